#!/bin/sh
# The release phase, run in the worker's image (heroku.yml's release.image).
echo "release phase in the worker image (web's files here: $(test -e /app/web.py && echo yes || echo no))"
