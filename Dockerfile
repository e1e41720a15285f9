# stylecast serve in a container: the [serve] extra only (numpy, Pillow, onnxruntime, FastAPI,
# uvicorn; no torch), the shipped styles inside the package, a non-root user.
#   docker build -t stylecast . && docker run -p 8000:8000 stylecast
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stylecast stylecast
COPY inference inference
COPY losses losses
COPY training training
COPY optimization optimization
COPY checkpoints checkpoints
RUN pip install --no-cache-dir '.[serve]' && rm -rf /src
RUN useradd --uid 10001 --create-home stylecast
USER 10001
WORKDIR /home/stylecast
EXPOSE 8000
# SIGTERM drains in-flight work (deadline + 5 s) before exiting: give `docker stop -t` at least 40 s
STOPSIGNAL SIGTERM
ENTRYPOINT ["stylecast"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
