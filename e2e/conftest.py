"""Shared fixtures: one emulator stack per session, the loader started on it when available."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack as stack_mod  # noqa: E402

# Stacks alive right now, so a failing test's report can carry the child processes' logs.
ACTIVE: list[stack_mod.Stack] = []


@contextmanager
def watched(running: stack_mod.Stack) -> Iterator[stack_mod.Stack]:
    """While inside: a failing test's report carries `running`'s process logs."""
    ACTIVE.append(running)
    try:
        yield running
    finally:
        ACTIVE.remove(running)


def require(reason: str | None) -> None:
    """Skip with ``reason`` in one line (fail instead, with GCR_USAGE_E2E_STRICT=1 as in CI);
    nothing when there is no reason."""
    if reason:
        if os.environ.get("GCR_USAGE_E2E_STRICT") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def require_loader() -> None:
    """The component and wasmtime are here."""
    require(stack_mod.loader_unavailable_reason())


def require_spin() -> None:
    """A Spin runtime (SPIN, ../shared/tools/spin, `spin` on PATH) and the Spin flavour are here."""
    require(stack_mod.spin_unavailable_reason())


def pytest_sessionstart(session: pytest.Session) -> None:
    # A CI runner's SIGTERM then still runs fixture teardown, which stops the child processes.
    stack_mod.stop_on_sigterm()


@pytest.fixture(scope="session")
def emulators() -> Iterator[stack_mod.Stack]:
    """fake-gcs-server + local-bigquery, the log bucket with every fixture, the empty dataset."""
    with stack_mod.stack(with_loader=False) as running, watched(running):
        yield running


@pytest.fixture(scope="session")
def loaded_stack(emulators: stack_mod.Stack) -> stack_mod.Stack:
    """The same stack with `wasmtime serve` running the component (stopped with the stack)."""
    require_loader()
    if not emulators.loader_url:
        stack_mod.start_loader(emulators, stack_mod.loader_env(emulators))
    return emulators


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for running in ACTIVE:
            report.sections.append(("gcr-usage stack logs", running.logs()))
