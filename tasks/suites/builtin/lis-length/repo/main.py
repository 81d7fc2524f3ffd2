"""Length of the longest strictly increasing subsequence.

Input: a line n, then a line of n integers. Output: the length.
"""

import sys


def lis_length(values):
    n = len(values)
    best = [1] * n
    for i in range(n):
        vi = values[i]
        longest = 1
        for j in range(i):
            if values[j] < vi and best[j] + 1 > longest:
                longest = best[j] + 1
        best[i] = longest
    return max(best, default=0)


def main():
    data = sys.stdin.read().split()
    if not data:
        return
    n = int(data[0])
    values = [int(x) for x in data[1 : 1 + n]]
    print(lis_length(values))


if __name__ == "__main__":
    main()
