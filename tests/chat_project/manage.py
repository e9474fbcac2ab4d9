#!/usr/bin/env python
"""The Channels tutorial's chat, as a project of its own: the trace is added in two lines (settings, asgi)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
