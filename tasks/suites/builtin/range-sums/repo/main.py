"""Answer range-sum queries over an array.

Input: a line "n q", a line of n integers, then q lines "l r" with 0 <= l <= r <= n.
Output: for each query, the sum of a[l:r] (l inclusive, r exclusive), one per line.
"""

import sys


def main():
    data = sys.stdin.buffer.read().split()
    if not data:
        return
    n, q = int(data[0]), int(data[1])
    values = [int(x) for x in data[2 : 2 + n]]
    out = []
    pos = 2 + n
    for _ in range(q):
        lo, hi = int(data[pos]), int(data[pos + 1])
        pos += 2
        total = 0
        for i in range(lo, hi):
            total += values[i]
        out.append(str(total))
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))


if __name__ == "__main__":
    main()
