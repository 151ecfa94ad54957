"""The agent's persisted settings: default PC/SC reader, CORS hosts, the last device.

Kept as plain JSON in ``<data dir>/settings.json`` (nothing secret in it; the cloud SAM
files are kept sealed elsewhere, ``nhigw.agent.cloudsam``). Without a data directory the
settings live in memory. Changes apply at once (the seed's console says "at the next
start"; ours does not need a restart).

Settings endpoints (JSON, under the component API; see ``nhigw.agent.app``):

    GET    /api/common/v1/Settings                    all settings
    PUT    /api/common/v1/Settings/Reader   {reader}   default PC/SC reader (null clears)
    PUT    /api/common/v1/Settings/Cors     {hosts}    CORS host patterns (e.g. *.nhi.gov.tw)
    GET    /api/common/v1/Settings/CloudSam            imported cloud SAMs
    POST   /api/common/v1/Settings/CloudSam  <file>    import a cloud SAM file (body: the file's JSON)
    DELETE /api/common/v1/Settings/CloudSam/{samId}    forget a cloud SAM
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from nhigw.common.logging import get_logger
from nhigw.contracts.models import AgentSettings

log = get_logger("nhigw.agent.settings")


class SettingsStore:
    def __init__(self, data_dir: Path | None = None) -> None:
        self.path = Path(data_dir) / "settings.json" if data_dir else None
        self.settings = AgentSettings()
        if self.path is not None and self.path.exists():
            try:
                self.settings = AgentSettings.model_validate_json(self.path.read_bytes())
            except (ValidationError, OSError) as exc:
                log.warning("settings_unreadable", path=str(self.path), error=str(exc)[:200])

    def update(self, **changes: object) -> AgentSettings:
        self.settings = self.settings.model_copy(update=changes)
        self.save()
        return self.settings

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.settings.model_dump(mode="json"), ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)
