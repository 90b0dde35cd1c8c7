"""The worker image's process: says it runs, now and then."""

import time

while True:
    print("worker alive in the worker image", flush=True)
    time.sleep(5)
