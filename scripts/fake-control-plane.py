#!/usr/bin/env python3
"""A LimiQuantix control-plane test double for the package test: answers the Connect JSON calls a
node makes (RegisterNode, UpdateHeartbeat, SyncNodeVMs, ScanLocalImages; SyncFullState with 501)
as the Go handlers do, and appends every call as one JSON line to the record file.

Usage: scripts/fake-control-plane.py PORT RECORD_FILE   (serves on 127.0.0.1:PORT until killed)"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NODE_ID = "9d1c0e4a-7b3f-4e2a-8c5d-1f0a2b3c4d5e"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")) or 0)
        method = self.path.rsplit("/", 1)[-1]
        with open(sys.argv[2], "a") as record:
            record.write(json.dumps({"method": method, "body": json.loads(body or b"{}")}) + "\n")
        if method == "RegisterNode":
            answer = {"id": NODE_ID, "hostname": json.loads(body).get("hostname", ""),
                      "createdAt": "2026-12-04T00:00:00Z"}
        elif method == "UpdateHeartbeat":
            answer = {"acknowledged": True, "serverTimeUnix": str(int(time.time())),
                      "heartbeatIntervalSecs": 30}
        elif method in ("SyncNodeVMs", "ScanLocalImages"):
            answer = {"registeredCount": 0, "existingCount": 0}
        else:
            self.reply(501, {"code": "unimplemented", "message": f"{method} is not implemented"})
            return
        self.reply(200, answer)

    def reply(self, status, answer):
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
