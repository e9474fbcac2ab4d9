"""The HTTP side: the page at ``/`` that drives both endpoints from a browser."""

from django.shortcuts import render

from consumers.core import ExplorerCore

ENDPOINTS = [
    {"name": "sc", "path": "/ws/sc/", "consumer": "SyncConsumer", "runs_on": "a worker thread"},
    {"name": "ac", "path": "/ws/ac/", "consumer": "AsyncConsumer", "runs_on": "the event loop"},
]
# What a command's button puts in the message box; commands without
# arguments (/help, /scope, /whoami, /raise) are sent at once.
EXAMPLES = {
    "bytes": "/bytes hello",
    "burst": "/burst 5 64",
    "sleep": "/sleep 1",
    "block": "/block 1",
    "join": "/join lobby",
    "say": "/say lobby hello",
    "leave": "/leave lobby",
    "close": "/close 4000 bye",
}


def index(request):
    commands = [
        {"name": name, "usage": usage, "summary": summary, "example": EXAMPLES.get(name)}
        for name, (usage, summary) in ExplorerCore.COMMANDS.items()
    ]
    options = [
        {"option": option, "summary": summary} for option, summary in ExplorerCore.CONNECT_OPTIONS.items()
    ]
    return render(
        request, "explorer/index.html", {"endpoints": ENDPOINTS, "commands": commands, "options": options}
    )
