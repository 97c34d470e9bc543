"""Is the Hugging Face Hub reachable? One answer for every layer that downloads (checkpoints, tokenizers).

Offline (`HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`, or no route to the endpoint) a download fails at once
with what to do, instead of retrying for a minute.

Example:
    >>> error_summary(ConnectionError("Name or service not known\\nretries exhausted"))
    'ConnectionError: Name or service not known'
"""
from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request

HUB_CONNECT_TIMEOUT_S = 3.0


def hub_offline() -> bool:
    """Whether the Hugging Face Hub must not be contacted: `HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE`
    set in the environment, or huggingface_hub's own offline switch on."""
    if env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_unreachable_reason(timeout: float | None = None) -> str | None:
    """None when the Hugging Face Hub endpoint (`HF_ENDPOINT`) answers a TCP connection, else why not,
    within about 2 x `timeout` seconds (default `HUB_CONNECT_TIMEOUT_S`). With a proxy configured it
    cannot tell and returns None (the download then reports what goes wrong).

    Example:
        >>> import socket
        >>> def no_dns(*args, **kwargs):
        ...     raise socket.gaierror(-2, "Name or service not known")
        >>> real, socket.getaddrinfo = socket.getaddrinfo, no_dns
        >>> try:
        ...     hub_unreachable_reason()
        ... finally:
        ...     socket.getaddrinfo = real
        'cannot reach https://huggingface.co (the name huggingface.co does not resolve: Name or service not known)'
    """
    timeout = HUB_CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urllib.parse.urlsplit(endpoint)
    if not url.hostname or urllib.request.getproxies().get(url.scheme) or urllib.request.proxy_bypass(url.hostname):
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    found: dict = {}

    def resolve():  # getaddrinfo takes no timeout, and a broken resolver can hang for many seconds
        try:
            found["addresses"] = socket.getaddrinfo(url.hostname, port, type=socket.SOCK_STREAM)
        except OSError as error:
            found["error"] = error

    lookup = threading.Thread(target=resolve, daemon=True)
    lookup.start()
    lookup.join(timeout)
    if "addresses" not in found:
        why = found.get("error")
        what = f"does not resolve: {why.strerror or why}" if why else f"did not resolve within {timeout:g} s"
        return f"cannot reach {endpoint} (the name {url.hostname} {what})"
    errors = []
    for family, kind, protocol, _, address in found["addresses"][:2]:
        try:
            with socket.socket(family, kind, protocol) as connection:
                connection.settimeout(timeout)
                connection.connect(address)
            return None
        except OSError as error:
            errors.append(error.strerror or str(error) or type(error).__name__)
    return f"cannot reach {endpoint} ({'; '.join(errors) or 'no address'})"


def error_summary(error: BaseException) -> str:
    """`"ErrorType: first line of its message"`, for wrapping a library's error in ours.

    Example:
        >>> error_summary(ConnectionError("Name or service not known\\nretries exhausted"))
        'ConnectionError: Name or service not known'
    """
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
