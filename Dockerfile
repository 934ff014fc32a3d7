# The workbench image for docker-compose.yml: Streamlit, the producer and the
# Spark consumers, with Java 17 for Spark.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .

ENV WORKBENCH_STATE_DIR=/data
EXPOSE 8501
CMD ["sh", "-c", "python -m pipeline.migrate && streamlit run app.py --server.address=0.0.0.0"]
