"""The exception hierarchy shared by the adapters: driver errors are translated at the edge."""


class HuibaoError(Exception):
    """Base of every error Huibao raises on purpose."""


class StorageUnavailableError(HuibaoError):
    """PostgreSQL cannot be reached or refused the operation for a transient reason."""


class UnstorableValueError(HuibaoError):
    """PostgreSQL refused a value (a data error, SQLSTATE class 22, or the driver could not
    encode it): retrying cannot help; the record holding it is refused as `unstorable`."""


class BrokerUnavailableError(HuibaoError):
    """The Kafka broker cannot be reached."""


class StartupRefusedError(HuibaoError):
    """The service cannot start as deployed (its Kafka topics are missing, ...): it exits
    non-zero with this one-line reason, never a traceback."""
