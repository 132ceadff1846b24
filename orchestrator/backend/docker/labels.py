"""Labels on every Docker object a run makes, so `tcpscen clean` can always find them, and tell
whose they are (`owner`): a live process's run is never removed from under it."""

from orchestrator.backend.docker.owner import owner_labels

RUN = "tcpscen.run"
SCENARIO = "tcpscen.scenario"
HOST = "tcpscen.host"
PART = "tcpscen.part"
IMAGE = "tcpscen.image"


def for_run(run_id: str, scenario: str, **extra: str) -> dict[str, str]:
    labels = {RUN: run_id, SCENARIO: scenario, **owner_labels()}
    labels.update({f"tcpscen.{k}": v for k, v in extra.items()})
    return labels
