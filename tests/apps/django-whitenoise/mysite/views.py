import os
import platform

from django.shortcuts import render


def home(request):
    return render(request, "home.html", {
        "python": platform.python_version(),
        "web_concurrency": os.environ.get("WEB_CONCURRENCY", "unset"),
        "greeting": os.environ.get("GREETING", "Hello from Django"),
    })
