import os

# Library tests never draw progress bars.
os.environ.setdefault("BACKPROP2_PROGRESS", "0")
