"""The paintings the shipped styles were trained on: title, artist, year, medium, and why each is
public domain (from ../shared/data/styles/SOURCES.md).

One table for everything that names a painting: the model cards (scripts/model_card.py), the
gallery, and the server's style listing (the page's swatches show title and artist). A model's
metadata says which painting it learned as `style_image` (a file name; a multi-style model lists
one per style); that file's stem is the key here. Titles are plain text: the model card adds the
Markdown italics. No torch: the server imports it.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import NamedTuple


class Painting(NamedTuple):
    title: str
    artist: str
    year: str
    medium: str
    public_domain: str
    # Where the file we trained on came from (not committed: a user fetches it), resized to a longer
    # side of at most 1024 px.
    source: str = ""


PAINTINGS: dict[str, Painting] = {
    "starry_night": Painting(
        "The Starry Night",
        "Vincent van Gogh",
        "1889",
        "oil on canvas",
        "the artist died in 1890; published before 1930",
        source="jcjohnson/neural-style `examples/inputs/starry_night_google.jpg` @ 07c4b82",
    ),
    "great_wave": Painting(
        "The Great Wave off Kanagawa (神奈川沖浪裏)",
        "Katsushika Hokusai",
        "c. 1830–32",
        "woodblock print",
        "the artist died in 1849; published c. 1831",
        source="jcjohnson/fast-neural-style `images/styles/wave.jpg` @ 813c834",
    ),
    "the_scream": Painting(
        "The Scream (Skrik)",
        "Edvard Munch",
        "1893",
        "tempera and crayon on cardboard",
        "the artist died in 1944 (public domain in life+70 countries since 2015); published 1893",
        source="jcjohnson/neural-style `examples/inputs/the_scream.jpg` @ 07c4b82",
    ),
    "composition_vii": Painting(
        "Composition VII",
        "Wassily Kandinsky",
        "1913",
        "oil on canvas",
        "the artist died in 1944 (public domain in life+70 countries since 2015); published 1913",
        source="jcjohnson/fast-neural-style `images/styles/composition_vii.jpg` @ 813c834",
    ),
    "udnie": Painting(
        "Udnie",
        "Francis Picabia",
        "1913",
        "oil on canvas",
        "the artist died in 1953 (life+70 countries since 2024); published 1913",
        source="jcjohnson/fast-neural-style `images/styles/udnie.jpg` @ 813c834",
    ),
    "shipwreck_minotaur": Painting(
        "The Wreck of a Transport Ship",
        "J. M. W. Turner",
        "c. 1810",
        "oil on canvas",
        "the artist died in 1851",
        source="lengstrom/fast-style-transfer `examples/style/the_shipwreck_of_the_minotaur.jpg` @ 0d3d981",
    ),
    "grande_jatte": Painting(
        "A Sunday Afternoon on the Island of La Grande Jatte",
        "Georges Seurat",
        "1884–86",
        "oil on canvas",
        "the artist died in 1891",
        source="jayanthkoushik/neural-style `data/images/original/paintings/la_grande_jatte.jpg` @ a657f5e (9 px frame cropped)",
    ),
    "water_lilies": Painting(
        "Water Lilies (Nymphéas)",
        "Claude Monet",
        "1919",
        "oil on canvas",
        "the artist died in 1926; published before 1930",
        source="titu1994/Neural-Style-Transfer `images/inputs/style/water-lilies-1919-2.jpg` @ d093348",
    ),
    "woman_with_hat": Painting(
        "Woman with a Hat (La Femme au chapeau)",
        "Henri Matisse",
        "1905",
        "oil on canvas",
        "the artist died in 1954 (public domain in life+70 countries since 2025); published (Salon d'Automne) 1905",
        source="jcjohnson/neural-style `examples/inputs/woman-with-hat-matisse.jpg` @ 07c4b82",
    ),
}


def painting_of(style_image: str | None) -> Painting | None:
    """The painting a model learned, from its `style_image` metadata (a file name or path); None
    when it is not one of ours (a user's own painting, a random test net)."""
    if not style_image:
        return None
    return PAINTINGS.get(PurePath(str(style_image).replace("\\", "/")).stem)
