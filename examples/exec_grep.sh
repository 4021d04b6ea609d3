#!/bin/sh
# Code on stdin, run in a fresh sandbox over the sample context: `sh examples/exec_grep.sh`.
cd "$(dirname "$0")/.." || exit 2
echo 'print(grep("timeout", glob="*.log")[:3])' | .venv/bin/rlm exec --context examples/sample_context
