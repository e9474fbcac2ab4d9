"""What the explorer keeps in the database: the messages said in rooms, for ``/history``.

The point is not the storage but the queries: a sync consumer makes them on
the sync thread itself, an async one through Django's async ORM, which runs
each of them on that same thread (``sync_to_async``), so the trace can show
who waited for whose query.
"""

from django.db import models

MAX_STORED = 10_000  # messages kept, all rooms together: the oldest go as new ones come


class RoomMessage(models.Model):
    room = models.CharField(max_length=100)
    sender = models.CharField(max_length=100)
    text = models.TextField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["room", "-id"], name="room_newest_first")]

    def __str__(self) -> str:
        return f"[{self.room}] {self.sender}: {self.text[:40]}"

    @classmethod
    def latest(cls, room: str, count: int) -> "models.QuerySet[RoomMessage]":
        """The last ``count`` messages said in ``room``, newest first: one query, not yet run."""
        return cls.objects.filter(room=room).order_by("-id")[:count]

    @classmethod
    def older_than(cls, kept: "RoomMessage") -> "models.QuerySet[RoomMessage]":
        """What falls out of the ``MAX_STORED`` kept once ``kept`` is stored: one DELETE, not yet run."""
        return cls.objects.filter(id__lte=kept.id - MAX_STORED)
