"""Our own long-running services, started in the background by `pacs up` (after the cluster).

The embedded default runs both sides on one machine: the data center's services and the
hospital edge, which still talks to the data center only over the network (STOW-RS, mTLS).

Each is a `pacs` sub-command run as `python -X pacs.daemon=NAME -m pacs_cli ARGS`, so the
supervisor tracks it like a daemon (pid file, log file, `pacs cluster stop-node NAME`).
"""
from __future__ import annotations

SERVICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("job-runner", ("job", "runner")),
    ("scp", ("scp",)),              # the MDC's DIMSE service (Q/R; verified C-STORE)
    ("gateway", ("gateway",)),      # the MDC's mTLS door: HL7 v3, STOW-RS from edges
    ("edge", ("edge",)),            # the hospital edge: modalities send here (11112, AE PACS)
    ("portal", ("portal",)),
)


def available(command_names: set[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The services whose command exists in this build (areas land one by one)."""
    return [(n, args) for n, args in SERVICES if args[0] in command_names]
