#!/usr/bin/env python3
"""A real OTLP/HTTP trace receiver for the tests.

    receiver.py SPANS_FILE

Listens on 127.0.0.1 on a free port (printed on the first line of stdout),
accepts `POST /v1/traces` with an OTLP `ExportTraceServiceRequest` in
protobuf (the OTLP/HTTP default, decoded with the OpenTelemetry project's own
generated classes, PyPI `opentelemetry-proto`), and appends every span to
SPANS_FILE as a JSON line: trace and span ids in hex, the parent span id, the
name, the service name and the attributes. Anything it cannot decode gets a
400 and is not recorded.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        request = ExportTraceServiceRequest()
        try:
            if self.path != "/v1/traces":
                raise DecodeError(f"unexpected path {self.path}")
            request.ParseFromString(body)
        except DecodeError as error:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(str(error).encode())
            return
        lines = []
        for resource_spans in request.resource_spans:
            resource = {a.key: value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(json.dumps({
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "service": resource.get("service.name"),
                        "attributes": {a.key: value(a.value) for a in span.attributes},
                    }))
        with open(sys.argv[1], "a", encoding="utf-8") as spans:
            spans.writelines(line + "\n" for line in lines)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
