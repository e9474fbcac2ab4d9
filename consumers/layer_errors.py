"""What a channel layer raises when its backend cannot be reached.

The in-memory layer never does; channels_redis raises redis' own errors or
the OS's. Both shells catch these around group_add, group_discard and
group_send, so a Redis outage is a clear reply to the client, not a 1011.
"""

try:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # redis is only there with channels_redis
    LAYER_ERRORS = (OSError,)
else:
    LAYER_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
