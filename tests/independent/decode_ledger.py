"""Decodes ledger values with Confluent's Python client (SchemaRegistryClient
and AvroDeserializer, over fastavro): a decoder recast did not write.

Reads JSON lines {"key": str, "value": hex} on stdin; for each, fetches the
writer schema by the id in the Confluent frame from the registry, decodes
the value, looks the schema up under its TopicRecordNameStrategy subject,
and prints one JSON line: the decoded event (times as epoch milliseconds,
UUIDs as text), the schema id, the record's full name and the subject's
latest id.

usage: decode_ledger.py REGISTRY_URL LEDGER_TOPIC < values.jsonl
"""

import datetime
import json
import sys
import uuid

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def plain(value):
    """JSON for what fastavro's logical types decode to."""
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot show {type(value)}")


def main():
    registry_url, topic = sys.argv[1], sys.argv[2]
    client = SchemaRegistryClient({"url": registry_url})
    deserializer = AvroDeserializer(client)
    context = SerializationContext(topic, MessageField.VALUE)
    for line in sys.stdin:
        record = json.loads(line)
        value = bytes.fromhex(record["value"])
        assert value[0] == 0, "not Confluent-framed"
        schema_id = int.from_bytes(value[1:5], "big")
        event = deserializer(value, context)
        schema = json.loads(client.get_schema(schema_id).schema_str)
        full_name = f"{schema['namespace']}.{schema['name']}"
        latest = client.get_latest_version(f"{topic}-{full_name}")
        print(
            json.dumps(
                {
                    "key": record["key"],
                    "schema_id": schema_id,
                    "record": full_name,
                    "subject_latest_id": latest.schema_id,
                    "event": event,
                },
                default=plain,
            )
        )


if __name__ == "__main__":
    main()
