"""Reading the service's log records (captured by the `service_logs` fixture in conftest.py)."""


def records(caplog, logger_name):
    return [r for r in caplog.records if r.name == logger_name]
