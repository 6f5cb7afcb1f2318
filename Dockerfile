FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/base.txt
# .dockerignore keeps .env, .run/, .venv/ and .git/ out of the image.
COPY . .
# Static files are collected at build time, where no secret exists: DEBUG on for this one command only.
RUN DJANGO_DEBUG=true python manage.py collectstatic --noinput -v 0 \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent talkpay
# Never root at run time; the code is owned by root and read-only to the app user.
USER talkpay
ENV DJANGO_DEBUG=false GUNICORN_BIND=0.0.0.0:8000 GUNICORN_WORKERS=3
EXPOSE 8000
# gunicorn.conf.py holds every gunicorn setting; GUNICORN_* variables override them.
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
