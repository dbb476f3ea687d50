"""Other "machines" for the tests: network namespaces joined to this one by veth pairs.

Each namespace gets a /24 of 10.231.0.0/16: the root namespace's end of the link is
``10.231.<subnet>.1``, the namespace's ``10.231.<subnet>.2``, and the namespace has nothing else
but its own loopback, so whatever runs inside reaches the root namespace (the test's servers,
its PostgreSQL cluster) over that link alone. Namespaces need root (CAP_SYS_ADMIN,
CAP_NET_ADMIN) and iproute2; where they cannot be made, the test fails saying so, never skips.

The ``namespaces`` fixture is registered for every test in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

__all__ = ["MakeNamespaces", "Namespace", "ip", "namespaces", "used_subnets"]


def ip(*args: str) -> None:
    """Run ``ip ARGS``; fail the test, saying what these tests need, if it fails."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.fail(
            f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}; "
            "these tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2"
        )


@dataclass
class Namespace:
    """A network namespace joined to the root namespace by a veth pair."""

    name: str
    host_if: str
    peer_if: str
    subnet: int  # the third octet: 10.231.<subnet>.0/24

    @property
    def host_address(self) -> str:
        """The root namespace's end of the link: where this namespace reaches PostgreSQL."""
        return f"10.231.{self.subnet}.1"

    @property
    def address(self) -> str:
        """This namespace's own address."""
        return f"10.231.{self.subnet}.2"

    @property
    def inode(self) -> int:
        """The namespace's identity, as ``readlink /proc/self/ns/net`` shows it inside."""
        return os.stat(f"/run/netns/{self.name}").st_ino

    def exec_prefix(self) -> list[str]:
        """What runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def create(self) -> None:
        """Make the namespace and its link, both ends addressed and up."""
        ip("netns", "add", self.name)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if)
        ip("link", "set", self.peer_if, "netns", self.name)
        ip("addr", "add", f"{self.host_address}/24", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("-n", self.name, "addr", "add", f"{self.address}/24", "dev", self.peer_if)
        ip("-n", self.name, "link", "set", self.peer_if, "up")
        ip("-n", self.name, "link", "set", "lo", "up")

    def cut(self, how: str) -> None:
        """Partition the namespace from the root namespace.

        ``link-down``: the link loses its carrier and both ends know it (sends fail at once).
        ``blackhole``: whatever the root namespace sends to the namespace vanishes, and nobody
        is told: the namespace's connections hang until TCP gives up on them.
        """
        if how == "link-down":
            ip("link", "set", self.host_if, "down")
        else:
            ip("route", "add", "blackhole", f"{self.address}/32")

    def heal(self, how: str) -> None:
        """Undo :meth:`cut`."""
        if how == "link-down":
            ip("link", "set", self.host_if, "up")
        else:
            ip("route", "del", "blackhole", f"{self.address}/32")

    def destroy(self) -> None:
        """Remove the namespace, its link and any blackhole route, whatever is left of them."""
        # Deleting one end of a veth pair deletes both (and the routes through it).
        for argv in (
            ["route", "del", "blackhole", f"{self.address}/32"],
            ["link", "del", self.host_if],
            ["netns", "del", self.name],
        ):
            subprocess.run(["ip", *argv], capture_output=True, timeout=30)


def used_subnets() -> set[int]:
    """The third octets of the 10.231.x.0/24 networks in use on this machine."""
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=False).stdout
    return {int(m) for m in re.findall(r"inet 10\.231\.(\d+)\.", out)}


MakeNamespaces = Callable[[int], list["Namespace"]]


@pytest.fixture
def namespaces() -> Iterator[MakeNamespaces]:
    """``namespaces(n)``: n fresh namespaces with their links; all are removed afterwards."""
    made: list[Namespace] = []

    def make(count: int) -> list[Namespace]:
        if os.geteuid() != 0:
            pytest.fail("network namespaces need root: run these tests as root")
        if shutil.which("ip") is None:
            pytest.fail("`ip` (iproute2) is not on PATH: apt-get install iproute2")
        used = used_subnets()
        start = 1 + os.getpid() % 200
        free = [s for s in range(start, 255) if s not in used] + [
            s for s in range(1, start) if s not in used
        ]
        tag = f"tq{os.getpid() % 100000}{len(made)}"
        result = []
        for i, subnet in enumerate(free[:count]):
            ns = Namespace(f"{tag}n{i}", f"{tag}h{i}", f"{tag}p{i}", subnet)
            made.append(ns)
            ns.create()
            result.append(ns)
        assert len(result) == count, "no free 10.231.x.0/24 subnet left"
        return result

    yield make
    for ns in made:
        ns.destroy()
