# One image for the three roles of the service; docker-compose.yml picks the role:
#   web      python -m runner.webserver ... monitor.asgi:application (daphne; CMD)
#   worker   python manage.py publish_metrics
#   migrate  python manage.py migrate --noinput && python manage.py ensure_admin
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every pinned dependency installs from a manylinux wheel (x86_64, glibc >= 2.34), so
# the slim image needs no compiler.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --create-home --home-dir /home/monitor \
        --shell /usr/sbin/nologin monitor

WORKDIR /app

# Requirements first: the dependency layer is rebuilt only when they change. Only
# what the service needs to run: the test, lint and browser tools
# (requirements-dev.txt) stay out of the image.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code stays owned by root: the service user can run it but not change it.
COPY . .
# The dashboard's static files, served by WhiteNoise (the key is needed only to load
# the settings here; it is not in the image's environment).
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0

USER monitor

EXPOSE 8000

CMD ["python", "-m", "runner.webserver", "--proxy-headers", "--websocket-max-message-size", "1048576", "-b", "0.0.0.0", "-p", "8000", "monitor.asgi:application"]
