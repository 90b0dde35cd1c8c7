"""On-disk state: apps, releases (vNN), config vars. Plain files you can read with ``cat``."""
