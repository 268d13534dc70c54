"""AsyncAPI 3.0 documents of the three services, built from the contracts alone.

One document per service (`reporting`, `rollup`, `scheduler`) describes the Kafka topics it
sends to and receives from: the channel (topic, partitions), the record key, the message
(payload schema from the pydantic models, CloudEvents structured or binary mode as Kafka
headers) and an example. `huibao_contracts.generate` writes them to `contracts/asyncapi/`;
a test regenerates them in memory and fails when the committed files drift.

Every `$ref` points inside its own document (`#/components/...`, `#/channels/...`), so a
document can be read by any AsyncAPI tool without the JSON Schema files beside it.
"""

from huibao_contracts.asyncapi.document import documents
from huibao_contracts.asyncapi.parts import GROUPS, SCHEDULER_TOPICS, SCHEDULER_TYPES, VERSION

__all__ = ["GROUPS", "SCHEDULER_TOPICS", "SCHEDULER_TYPES", "VERSION", "documents"]
