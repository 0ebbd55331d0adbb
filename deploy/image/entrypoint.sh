#!/bin/sh
# The image's command: the first argument names what runs (see the Dockerfile).
set -eu

usage() {
    echo "usage: baocao submission|validation|aggregation|connector|hub_simulator" >&2
    echo "       baocao provision-topics [--dry-run]" >&2
}

command="${1:-help}"
if [ "$#" -gt 0 ]; then shift; fi
case "$command" in
    submission | validation | aggregation | connector | hub_simulator)
        exec python -m "services.$command" "$@"
        ;;
    provision-topics)
        exec python -m services.topics "$@"
        ;;
    help | -h | --help)
        usage
        ;;
    *)
        echo "baocao: unknown command '$command'" >&2
        usage
        exit 64
        ;;
esac
