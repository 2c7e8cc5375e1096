"""Django settings of the Django Tasks test: the worker process runs with these."""

SECRET_KEY = "rtframe-tasks-test"  # a test key
USE_TZ = True
INSTALLED_APPS = ["django_tasks"]
DATABASES: dict[str, dict[str, str]] = {}
TASKS = {
    "default": {
        "BACKEND": "rtframe.django.tasks.RtframeTaskBackend",
        "OPTIONS": {"TASKS": "tests.tasks.django_app.tasks"},
    }
}
