"""What the medlab serve tests share: images they send, and starting a server on a free loopback port."""
import base64
import re
import struct
import subprocess
import sys
import zlib

# A 20x14 colour gradient, written by Pillow (baseline JPEG, quality 80).
JPEG_20x14 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsjHBYWICwgIyYnKSopGR8tMC0o"
    "MCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wAARCAAOABQDASIA"
    "AhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0Kx"
    "wRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ip"
    "qrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA"
    "AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldY"
    "WVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3"
    "+Pn6/9oADAMBAAIRAxEAPwDyrT/DHT5P0rptP8MdPk/SvRdP0GHj7tdPp+gw8fdrbFZ7I8jIOJJaanmcHhj92Pk/SivbIdBh8sdKK8Z57K5+mU+JJcq1"
    "P//Z")


def png_bytes(width, height, pixel):
    """An 8-bit RGB PNG; pixel(x, y) -> (r, g, b)."""
    rows = b"".join(b"\0" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def data_uri(media_type, data):
    return "data:%s;base64,%s" % (media_type, base64.b64encode(data).decode())


def start_server(command, log):
    """Starts `medlab serve ... --port 0` (command) with stderr to the open file `log`; returns the process,
    host and port from the line it prints once listening."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    line = process.stdout.readline()
    match = re.match(r"medlab serve: listening on http://([^:]+):(\d+)$", line.strip())
    if not match:
        process.kill()
        sys.exit("server did not start: %r; see %s" % (line, log.name))
    return process, match.group(1), int(match.group(2))


def read_events(response, stop_after=None):
    """Reads a text/event-stream response: a list of (event, data). stop_after(n_events) ends early."""
    events, name, data = [], "message", []
    while True:
        line = response.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if line == "":
            if data:
                events.append((name, "\n".join(data)))
                if stop_after and stop_after(len(events)):
                    break
            name, data = "message", []
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
    return events
