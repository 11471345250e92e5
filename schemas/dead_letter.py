"""A dead letter: the original key and value stay byte-identical; what happened travels in headers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

HEADER_PREFIX = "contactsync."


class DeadLetter(BaseModel):
    """Why and where a message died. ``to_headers``/``from_headers`` map it onto Kafka headers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str
    error_class: str
    error_message: str
    original_topic: str
    original_partition: int
    original_offset: int
    first_failure_ms: int
    last_failure_ms: int
    attempts: int = 1
    provider: str = ""

    def to_headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_PREFIX + name, str(value).encode())
            for name, value in self.model_dump().items()
        ]

    @classmethod
    def from_headers(cls, headers: list[tuple[str, bytes]]) -> DeadLetter:
        fields = {
            name.removeprefix(HEADER_PREFIX): value.decode()
            for name, value in headers
            if name.startswith(HEADER_PREFIX)
        }
        return cls.model_validate(fields)
