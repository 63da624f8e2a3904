"""A method that never finishes."""
import time

while True:
    time.sleep(0.5)
