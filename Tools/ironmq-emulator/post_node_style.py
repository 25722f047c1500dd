"""Posts a node-ivy message with Iron.io's own Python client (PyPI `iron-mq`), as a node-ivy
producer's queue would hold it: `{"name","options","args"}`, no id, no notify.

usage: post_node_style.py HOST PORT PROJECT TOKEN QUEUE NAME ARGS_JSON [--encrypt-with IVY]
With --encrypt-with, the body is sealed in node ivy's own `$aes-256-cbc$` format by
`IVY encrypt --legacy` (key from MESSAGES_ENCRYPTION_KEY), as a node-ivy producer with
`encryptionKey` sends it.
Prints the message id IronMQ gave it.
"""

import json
import subprocess
import sys

from iron_mq import IronMQ


def main(argv: list[str]) -> int:
    host, port, project, token, queue, name, args = argv[1:8]
    body = json.dumps({"name": name, "options": {}, "args": json.loads(args)}, separators=(",", ":"))
    if argv[8:9] == ["--encrypt-with"]:
        sealed = subprocess.run([argv[9], "encrypt", "--legacy"], input=body, capture_output=True,
                                text=True, check=True)
        body = sealed.stdout.strip()
        assert body.startswith("$aes-256-cbc$"), body[:20]
    mq = IronMQ(host=host, port=int(port), protocol="http", project_id=project, token=token, api_version=3)
    posted = mq.queue(queue).post(body)
    print(posted["ids"][0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
