"""C, the raw floor: a loop that only `orjson.loads` each input line."""

import sys

import orjson


def main() -> None:
    count = 0
    for line in sys.stdin.buffer:
        orjson.loads(line)
        count += 1
    print(count)


if __name__ == "__main__":
    main()
