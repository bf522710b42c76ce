"""What page fetching may reach: http(s) URLs whose host resolves only to public addresses.

Two layers, both fed by the same resolver: :func:`check_url` refuses a URL up front with a message that
names the reason (it runs on every redirect hop), and :class:`AddressGuard` re-resolves and re-checks at
connection time and connects to the checked address itself, so a name that changes its answer between the
check and the connection (DNS rebinding) still cannot reach a private address. Tests inject a resolver
instead of using DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

import httpx

from deepmmsearch.errors import ToolError

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")


class UnsafeURLError(ToolError):
    """A URL that page fetching refuses to open: wrong scheme, or a host that is not public."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves ``host`` to, in its order of preference."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ToolError(f"cannot resolve host {host!r} ({e})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def blocked_reason(address: str | IPAddress) -> str | None:
    """Why an address is off limits to page fetching ("loopback", "private", ...), or None when public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    )
    for label, hit in checks:
        if hit:
            return label
    # Shared (100.64/10), documentation and benchmarking ranges are neither private nor public.
    return None if ip.is_global else "non-public"


def _host_of(url: httpx.URL) -> str:
    return url.host.strip("[]")


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """Parse a URL as the HTTP client will, refusing anything but http(s) with a host."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise UnsafeURLError(f"refused {str(url)[:200]!r}: not a valid URL ({e})") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        scheme = parsed.scheme or "no scheme"
        raise UnsafeURLError(f"refused {str(url)[:200]!r}: only http and https URLs are fetched, not {scheme}")
    if not parsed.host:
        raise UnsafeURLError(f"refused {str(url)[:200]!r}: the URL has no host")
    return parsed


class AddressGuard:
    """Resolves hosts and keeps only public addresses, unless ``allow_private`` is set."""

    def __init__(self, allow_private: bool = False, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self.resolver = resolver or system_resolver

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``; raises UnsafeURLError when any of them is not public.

        Refusing when *any* address is private (not only all) closes the trick of a name that answers with
        one public and one private address and lets the client pick.
        """
        host = host.strip("[]")
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            literal = None
        addresses = [host] if literal is not None else await self.resolver(host, port)
        if not addresses:
            raise ToolError(f"cannot resolve host {host!r}: no addresses")
        if not self.allow_private:
            for address in addresses:
                reason = blocked_reason(address)
                if reason is not None:
                    shown = host if literal is not None else f"{host} (resolves to {address})"
                    raise UnsafeURLError(
                        f"refused {shown}: {reason} address; page fetching reaches only public hosts "
                        "(--allow-private lifts this for local development)"
                    )
        return addresses

    async def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """Refuse a URL whose scheme is not http(s) or whose host is not public; return it parsed."""
        parsed = parse_url(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            await self.addresses(_host_of(parsed), port)
        except UnsafeURLError as e:
            raise UnsafeURLError(f"{e} [{str(parsed)[:200]}]") from None
        return parsed
