#!/usr/bin/env bash
# scripts/get-training-photos.sh OUT_DIR
#
# Training photos for `stylecast train` on Debian/Ubuntu, without COCO's 13 GB: about 150 free
# photos (the 147 the shipped styles were trained on), 8 MB. Runs apt-get download (nothing is
# installed but, without a Python that has Pillow, python3-pil). Kept from the project's shared data folder,
# where it made the training set; the photos it leaves out (EXCLUDE below) are the project's
# held-out test photos.
#
# Collects freely licensed *natural photographs* from Debian packages, for use
# as content images when training feed-forward style-transfer networks.
# Nothing is fetched except Debian packages (apt-get download); they are
# unpacked with dpkg -x into a temporary directory, real photographs are
# picked by an explicit per-package / per-file-pattern allowlist (abstract
# art, renders, logos and clip art are left out), resolution variants of the
# same wallpaper are collapsed to the largest one, near-duplicates across
# packages are dropped, and every picture is written to OUT_DIR as
# JPEG quality 90 with its longer side scaled down to 512 px.
#
# OUT_DIR also receives MANIFEST.tsv (file -> package, version, path in the
# package, original size) and LICENSES/ (each package's Debian copyright file,
# plus the per-photo credit READMEs that GCompris ships).  All photos are under
# free licenses (PD, CC0, CC-BY, CC-BY-SA, GPL/LGPL, GFDL); the attribution /
# share-alike ones need credit if the photos themselves are redistributed.
#
# Packages used and what is taken from each (decided by looking at them):
#   mate-backgrounds              nature/*.jpg                12 photos
#   plasma-workspace-wallpapers   9 photographic wallpapers   (largest variant)
#   lomiri-wallpapers-16.04       9 of 15 (2 abstract skipped, 4 used as test content)
#   lomiri-wallpapers-20.04       Kleiber (the other 3 are artwork)
#   jigzo-data                    11 puzzle photos (penguin skipped: CC-BY-NC-SA)
#   gcompris-qt-data              photos of the erase / explore_monuments /
#                                 explore_world_animals / explore_farm_animals
#                                 activities (read out of the Qt .rcc bundles)
# Looked at and not used: gnome-backgrounds, ukui-wallpapers, sway-backgrounds,
# lomiri-wallpapers (renders / illustrations / logos only) and
# tuxpaint-stamps-default (small cut-outs on transparent backgrounds, half
# clip art).  The project's test photos are excluded, so test content never
# ends up in the training set.
#
# Environment: SIZE (default 512), QUALITY (default 90), KEEP_TMP=1 to keep
# the unpacked packages.  Needs root (or sudo) only for apt-get update and, if
# Pillow is missing, for installing python3-pil.
set -euo pipefail

OUT=${1:?usage: $0 OUT_DIR}
SIZE=${SIZE:-512}
QUALITY=${QUALITY:-90}
PACKAGES=(
  mate-backgrounds
  plasma-workspace-wallpapers
  lomiri-wallpapers-16.04
  lomiri-wallpapers-20.04
  jigzo-data
  gcompris-qt-data
)

log() { printf '%s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "error: need root for: $*"; return 1
  fi
}

lists_empty() { ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }

UPDATED=0
apt_update() {
  if [ "$UPDATED" -eq 0 ]; then
    log "running apt-get update ..."
    as_root apt-get update -qq >&2
    UPDATED=1
  fi
}

# a python3 whose Pillow can read WebP: the one on PATH, else Debian's own
pick_python() {
  local p
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 &&
       "$p" -c 'from PIL import Image, features; assert features.check("webp")' >/dev/null 2>&1; then
      echo "$p"; return 0
    fi
  done
  return 1
}

command -v apt-get >/dev/null || { log "error: apt-get not found (Debian/Ubuntu only)"; exit 1; }
command -v dpkg >/dev/null || { log "error: dpkg not found"; exit 1; }

if lists_empty; then apt_update; fi

if ! PY=$(pick_python); then
  log "installing python3-pil ..."
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-pil >&2
  PY=$(pick_python) || { log "error: python3 with Pillow (WebP support) is still not usable"; exit 1; }
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/trainphotos.XXXXXX")
if [ "${KEEP_TMP:-0}" = 1 ]; then
  log "keeping $TMP"
else
  trap 'rm -rf "$TMP"' EXIT
fi
mkdir -p "$TMP/debs" "$TMP/x"
# let apt's unprivileged _apt user write the downloads (avoids a sandbox warning)
chmod 755 "$TMP"; chmod 777 "$TMP/debs"

got=0
for pkg in "${PACKAGES[@]}"; do
  ok=0
  if (cd "$TMP/debs" && apt-get download -qq "$pkg" >&2 2>/dev/null); then
    ok=1
  elif [ "$UPDATED" -eq 0 ]; then
    apt_update
    (cd "$TMP/debs" && apt-get download -qq "$pkg" >&2) && ok=1
  fi
  if [ "$ok" -ne 1 ]; then
    log "warning: could not download $pkg, skipping it"
    continue
  fi
  deb=$(ls "$TMP/debs/${pkg}_"*.deb | head -n1)
  mkdir -p "$TMP/x/$pkg"
  dpkg -x "$deb" "$TMP/x/$pkg"
  dpkg-deb -f "$deb" Version > "$TMP/x/$pkg/.version"
  got=$((got + 1))
  log "unpacked $(basename "$deb")"
done
[ "$got" -gt 0 ] || { log "error: no package could be downloaded"; exit 1; }

mkdir -p "$OUT"
"$PY" - "$TMP/x" "$OUT" "$SIZE" "$QUALITY" <<'PY'
import glob, io, os, re, shutil, struct, sys, zlib
from PIL import Image, ImageOps

X, OUT, SIZE, QUALITY = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
MIN_SIDE = 400          # skip anything smaller than this (thumbnails, icons)

# The project's held-out test photos: keep them out of the training set.
EXCLUDE = {
    ('plasma-workspace-wallpapers', 'EveningGlow'),
    ('plasma-workspace-wallpapers', 'Grey'),
    ('lomiri-wallpapers-16.04', 'seeding_by_Clements_Engelhardt'),
    ('lomiri-wallpapers-16.04', 'picosdeeuropa_by_Aitzol_Berasategi'),
    ('lomiri-wallpapers-16.04', 'friends_by_Aitzol_Berasategi'),
    ('lomiri-wallpapers-16.04', 'Wine_by_Jakkub_Mede'),
    ('gcompris-qt-data', 'brandenburgGate'),
}
PLASMA_PHOTOS = ['BytheWater', 'ColdRipple', 'ColorfulCups', 'DarkestHour',
                 'EveningGlow', 'FallenLeaf', 'Grey', 'Kite', 'OneStandsOut',
                 'Path', 'summer_1am']
LOMIRI16_NOT_PHOTOS = ('analogpattern_', 'umang_')
GCOMPRIS_ACTIVITIES = ['erase', 'explore_monuments', 'explore_world_animals',
                       'explore_farm_animals']
SHORT = {'mate-backgrounds': 'mate', 'plasma-workspace-wallpapers': 'plasma',
         'lomiri-wallpapers-16.04': 'lomiri16', 'lomiri-wallpapers-20.04': 'lomiri20',
         'jigzo-data': 'jigzo', 'gcompris-qt-data': 'gcompris'}

def root(pkg):
    return os.path.join(X, pkg)

def version(pkg):
    try:
        return open(os.path.join(root(pkg), '.version')).read().strip()
    except OSError:
        return '?'

def from_file(path):
    def load():
        return Image.open(path)
    return load

def from_bytes(data):
    def load():
        return Image.open(io.BytesIO(data))
    return load

# candidate = (package, group key, label, source path, loader)
cands = []

def add_files(pkg, pattern, group=None, skip=()):
    for p in sorted(glob.glob(os.path.join(root(pkg), pattern))):
        stem = os.path.splitext(os.path.basename(p))[0]
        if stem.startswith(skip):
            continue
        g = group(p) if group else re.sub(r'[_-]?\d{3,5}x\d{3,5}$', '', stem)
        cands.append((pkg, g, g, os.path.relpath(p, root(pkg)), from_file(p)))

# 1. MATE: everything under nature/ is a photograph; abstract/ and desktop/ are not.
add_files('mate-backgrounds', 'usr/share/backgrounds/mate/nature/*.jpg')

# 2. Plasma: photographic wallpapers only; each has several resolutions.
for name in PLASMA_PHOTOS:
    add_files('plasma-workspace-wallpapers',
              'usr/share/wallpapers/%s/contents/images/*' % name,
              group=lambda p, n=name: n)

# 3. Lomiri (Ubuntu Touch community wallpapers).
add_files('lomiri-wallpapers-16.04', 'usr/share/backgrounds/*.jpg', skip=LOMIRI16_NOT_PHOTOS)
add_files('lomiri-wallpapers-20.04', 'usr/share/backgrounds/Kleiber_*.jpg')

# 4. jigzo: each .pzl holds a thumbnail and a texture atlas whose rectangle
#    "image x y w h" is the full photo.
for p in sorted(glob.glob(os.path.join(root('jigzo-data'), 'usr/share/games/jigzo/puzzles/*/*.pzl'))):
    stem = os.path.splitext(os.path.basename(p))[0]
    if stem.startswith('penguin'):          # CC-BY-NC-SA: not free
        continue
    b = open(p, 'rb').read()
    first = b.find(b'\xff\xd8\xff')
    if first < 0:
        continue
    head = b[:first].decode('latin-1')
    best = None
    for m in re.finditer(rb'\xff\xd8\xff', b):
        try:
            im = Image.open(io.BytesIO(b[m.start():]))
            if best is None or im.size[0] * im.size[1] > best[1][0] * best[1][1]:
                best = (m.start(), im.size)
        except Exception:
            pass
    if best is None:
        continue
    rect = re.search(r'^image (\d+) (\d+) (\d+) (\d+)', head, re.M)
    def load(data=b[best[0]:], rect=rect):
        im = Image.open(io.BytesIO(data))
        if rect:
            x, y, w, h = map(int, rect.groups())
            im.load()
            im = im.crop((x, y, x + w, y + h))
        return im
    g = re.sub(r'-\d+x\d+$', '', stem)
    cands.append(('jigzo-data', g, g, os.path.relpath(p, root('jigzo-data')), load))

# 5. GCompris: photos live in Qt binary resource bundles (.rcc).
try:
    import zstandard as zstd    # only needed for zstd-compressed entries (Qt 6)
except ImportError:
    zstd = None

def rcc_files(b):
    if b[:4] != b'qres':
        return
    ver, tree, data, names = struct.unpack('>IIII', b[4:20])
    node = 22 if ver >= 2 else 14
    def name(off):
        o = names + off
        n = struct.unpack('>H', b[o:o + 2])[0]
        return b[o + 6:o + 6 + 2 * n].decode('utf-16-be')
    def walk(i, prefix):
        o = tree + i * node
        noff, flags = struct.unpack('>IH', b[o:o + 6])
        path = prefix + '/' + name(noff) if i else prefix
        if flags & 2:                                   # directory
            cnt, first = struct.unpack('>II', b[o + 6:o + 14])
            for c in range(first, first + cnt):
                yield from walk(c, path)
        else:
            doff = struct.unpack('>I', b[o + 10:o + 14])[0]
            q = data + doff
            sz = struct.unpack('>I', b[q:q + 4])[0]
            raw = b[q + 4:q + 4 + sz]
            if flags & 1:                               # zlib (qCompress)
                raw = zlib.decompress(raw[4:])
            elif flags & 4:                             # zstd (Qt 6 rcc)
                if zstd is None:
                    return
                raw = zstd.ZstdDecompressor().decompressobj().decompress(raw)
            yield path, raw
    yield from walk(0, '')

gc_root = os.path.join(root('gcompris-qt-data'), 'usr/share/gcompris-qt/rcc')
os.makedirs(os.path.join(OUT, 'LICENSES'), exist_ok=True)
for act in GCOMPRIS_ACTIVITIES:
    f = os.path.join(gc_root, act + '.rcc')
    if not os.path.exists(f):
        continue
    try:
        entries = list(rcc_files(open(f, 'rb').read()))
    except Exception as e:
        print('warning: cannot read %s: %s' % (f, e), file=sys.stderr)
        continue
    for path, data in entries:
        base = os.path.basename(path)
        if base == 'README':          # per-photo author / licence / source
            with open(os.path.join(OUT, 'LICENSES', 'gcompris-%s-README.txt' % act), 'wb') as fh:
                fh.write(data)
        elif base.endswith(('.webp', '.jpg', '.jpeg', '.png')):
            stem = os.path.splitext(base)[0]
            cands.append(('gcompris-qt-data', act + '/' + stem, act + '-' + stem,
                          'usr/share/gcompris-qt/rcc/%s.rcc:%s' % (act, path), from_bytes(data)))

# ---- open, filter, collapse resolution variants (keep the largest) ----
best = {}
for pkg, group, label, src, load in cands:
    if any(pkg == p and key in src for p, key in EXCLUDE):
        continue
    try:
        im = load()
        w, h = im.size
    except Exception as e:
        print('warning: skipping %s:%s (%s)' % (pkg, src, e), file=sys.stderr)
        continue
    if max(w, h) < MIN_SIDE:
        continue
    k = (pkg, group)
    if k not in best or w * h > best[k][3][0] * best[k][3][1]:
        best[k] = (label, src, load, (w, h))

def dhash(im, n=16):
    # difference hash on an (n+1) x n grey thumbnail: n*n bits
    g = im.convert('L').resize((n + 1, n), Image.BILINEAR)
    px = g.tobytes()
    return sum(1 << i for i in range(n * n)
               if px[(i // n) * (n + 1) + i % n] < px[(i // n) * (n + 1) + i % n + 1])

# ---- write, dropping near-duplicates across packages ----
items = sorted(best.items(), key=lambda kv: -(kv[1][3][0] * kv[1][3][1]))
hashes, rows, n, total = [], [], 0, 0
for (pkg, group), (label, src, load, size) in items:
    im = ImageOps.exif_transpose(load()).convert('RGB')
    h = dhash(im)
    if any(bin(h ^ o).count('1') <= 20 for o in hashes):   # of 256 bits
        print('note: near-duplicate dropped: %s:%s' % (pkg, src), file=sys.stderr)
        continue
    hashes.append(h)
    w0, h0 = im.size
    s = SIZE / max(w0, h0)
    if s < 1:
        im = im.resize((max(1, round(w0 * s)), max(1, round(h0 * s))), Image.LANCZOS)
    name = '%s__%s.jpg' % (SHORT.get(pkg, pkg), re.sub(r'[^A-Za-z0-9_.-]+', '_', label))
    dst = os.path.join(OUT, name)
    im.save(dst, 'JPEG', quality=QUALITY, optimize=True)
    total += os.path.getsize(dst)
    rows.append((name, pkg, version(pkg), src, '%dx%d' % size))
    n += 1

with open(os.path.join(OUT, 'MANIFEST.tsv'), 'w') as fh:
    fh.write('file\tpackage\tversion\tsource_in_package\toriginal_size\n')
    for r in sorted(rows):
        fh.write('\t'.join(r) + '\n')
for pkg in sorted({r[1] for r in rows}):
    c = os.path.join(root(pkg), 'usr/share/doc', pkg, 'copyright')
    if os.path.exists(c):
        shutil.copy(c, os.path.join(OUT, 'LICENSES', pkg + '.copyright'))

per = {}
for r in rows:
    per[r[1]] = per.get(r[1], 0) + 1
for pkg in sorted(per):
    print('  %-30s %3d' % (pkg, per[pkg]), file=sys.stderr)
print('%d photos, %.1f MB, written to %s' % (n, total / 1e6, OUT), file=sys.stderr)
print(n)
PY
