"""How much a server still holds for a client that has not read it, where the server shows it.

A client that stops reading makes the server buffer what the application
sends: daphne (Twisted) buffers without limit and never makes ``send`` wait;
uvicorn stops writing past its high-water mark and makes the next ``send``
wait until the client reads. ``probe(send)`` finds the server behind the
ASGI ``send`` the consumer was given (through the trace's wrapper and
asgiref's ``async_to_sync``) and returns a function that reads its buffer
now: bytes, ``PAUSED`` while uvicorn is not writing, or None for a server
that does not show it (hypercorn, granian, a test harness). The consumers'
limits and the trace's page panel both read it; importing it imports neither
(the trace's server knowledge is imported when a probe is made).
"""

import functools


class Paused:
    def __repr__(self):
        return "PAUSED"


PAUSED = Paused()  # the server has stopped writing to the client until it reads
DEPTH = 5  # wrappers looked through: async_to_sync, channels' session wrapper, the trace's


def inside(thing):
    """What the trace does not look through: asgiref's AsyncToSync keeps its
    ``awaitable``, and a wrapper object (channels' session middleware keeps
    ``real_send``) holds the callable it wraps as an attribute of the object
    its method is bound to."""
    from explorer.trace.servers import module_of

    found = [thing.awaitable] if hasattr(thing, "awaitable") else []
    owner = getattr(thing, "__self__", None)
    if owner is not None and not (module_of(thing) or "").startswith(("daphne", "uvicorn")):
        found += vars_of(owner)
    return found


def vars_of(owner):
    try:
        return list(vars(owner).values())
    except TypeError:  # no __dict__
        return []


def probe(send):
    from explorer.trace.servers import module_of, unwrapped

    for thing in unwrapped(send, DEPTH, inside):
        module = module_of(thing) or ""
        if isinstance(thing, functools.partial) and module_of(thing.func) == "daphne.server":
            protocol = thing.args[0] if thing.args else None
            transport = getattr(protocol, "transport", None)
            if transport is not None and hasattr(transport, "dataBuffer"):
                return functools.partial(twisted_buffered, transport)
        if module.startswith("uvicorn.protocols.websockets"):
            protocol = getattr(thing, "__self__", None)
            if protocol is not None and getattr(protocol, "transport", None) is not None:
                return functools.partial(uvicorn_buffered, protocol)
    return lambda: None


def twisted_buffered(transport):
    # Twisted's FileDescriptor: what is left of dataBuffer, and writes not yet joined to it.
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def uvicorn_buffered(protocol):
    transport = protocol.transport
    buffered = transport.get_write_buffer_size()
    # uvicorn's next send waits once the transport pauses it, past the high-water mark;
    # the pause may come a loop turn after the write, so the mark is read here too.
    _, high_water = transport.get_write_buffer_limits()
    writable = getattr(protocol, "writable", None)
    if buffered > high_water or (writable is not None and not writable.is_set()):
        return PAUSED
    return buffered
