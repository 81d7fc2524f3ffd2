"""Count the pairs i < j with a[i] + a[j] == k.

Input: a line "n k", then a line of n integers. Output: the number of pairs.
"""

import sys


def count_pairs(values, k):
    count = 0
    n = len(values)
    for i in range(n):
        first = values[i]
        for j in range(i + 1, n):
            if first + values[j] == k:
                count += 1
    return count


def main():
    data = sys.stdin.read().split()
    if not data:
        return
    n, k = int(data[0]), int(data[1])
    values = [int(x) for x in data[2 : 2 + n]]
    print(count_pairs(values, k))


if __name__ == "__main__":
    main()
