"""An independent reader of the relay's records: Python's msgpack and protobuf packages, with
confluent-kafka (librdkafka) as the Kafka client and grpc_tools' protoc compiling the domain's
.proto files. It reads COUNT records of TOPIC from the start, and prints one JSON line per
record: its content type and the value as the format's own decoder reads it (Avro values are
left to Avro readers: null).

usage: read_formats.py BROKERS TOPIC COUNT PROTO_DIR FILES

FILES is a JSON object: schema fingerprint (the header) to the .proto file of its version.
"""
import json
import os
import sys
import tempfile

import msgpack
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.json_format import MessageToDict
from grpc_tools import protoc


def message_class(proto_dir, name):
    """The message class of <Type>.v<N>.proto, compiled by protoc into a pool of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        if protoc.main(["protoc", "-I" + proto_dir, "--descriptor_set_out=" + out, name]) != 0:
            raise SystemExit("protoc failed on " + name)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    typ = name.split(".")[0]
    desc = pool.FindMessageTypeByName(fds.file[0].package + "." + typ)
    return message_factory.GetMessageClass(desc)


def main():
    brokers, topic, count, proto_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    files = json.loads(sys.argv[5])
    # Partitions assigned by hand, from the start: no group joins, so none is left on the
    # broker for other tests' lag readers to meet.
    c = Consumer({"bootstrap.servers": brokers, "group.id": "pyreader-" + topic,
                  "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=30).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(parts)])
    seen = 0
    while seen < count:
        m = c.poll(30)
        if m is None:
            raise SystemExit("no record within 30 s after %d of %d" % (seen, count))
        if m.error():
            raise SystemExit(str(m.error()))
        h = {k: (v.decode() if v is not None else "") for k, v in (m.headers() or [])}
        ct = h.get("content-type", "")
        if ct == "application/msgpack":
            value = msgpack.unpackb(m.value(), raw=False, strict_map_key=True)
        elif ct == "application/x-protobuf":
            cls = message_class(proto_dir, files[h["schema-fingerprint"]])
            msg = cls()
            msg.ParseFromString(m.value())
            value = MessageToDict(msg, preserving_proto_field_name=True)
        else:
            value = None
        print(json.dumps({"partition": m.partition(), "offset": m.offset(), "content_type": ct, "value": value}), flush=True)
        seen += 1
    c.close()


main()
