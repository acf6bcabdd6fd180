// scikit-learn's `GroupKFold` as InnerEye ran it (scikit-learn 0.23.2 on numpy 1.19.1, the versions its
// environment.yml pins), so that a cross-validation with a group column validates on exactly InnerEye's
// subjects (SPEC §3).
//
// GroupKFold's fold assignment hangs on the order of groups that have the same number of samples, and that
// order is whatever numpy's unstable default argsort leaves; hence `numpy119Argsort`.

/// numpy 1.19's `np.argsort(values)` with the default kind 'quicksort', for integer values, equal values
/// included: the permutation is the one numpy's `aquicksort` produces, not merely a sorting one.
///
/// That routine is an introsort over an index array that starts as 0..<n: while a range holds more than 16
/// indices it is partitioned around the median of its first, middle and last values (the median is parked at
/// hi - 1; two cursors stop at values >= / <= the pivot and swap, so equal values move: the sort is not stable),
/// the larger part is set aside on a stack and the smaller one partitioned further; a range of at most 16
/// indices gets an insertion sort (stable). Each partition costs one unit of a depth budget of 2 * floor(log2 n);
/// a range taken from the stack with an exhausted (negative) budget is heap-sorted instead.
///
/// Newer numpy gives other tie orders (numpy 2.x may hand int64 argsort to x86-simd-sort, even for short arrays),
/// so no numpy installed today stands in for this; the tests compare against a python rendering of the same
/// algorithm, which was checked against numpy 1.19.1's C source compiled on its own.
public func numpy119Argsort(_ values: [Int]) -> [Int] {
    var order = Array(values.indices)
    guard values.count > 1 else { return order }
    // numpy's SMALL_QUICKSORT: ranges with hi - lo <= 15 are left to the insertion sort.
    let largestInsertionSortSpan = 15
    var lo = 0, hi = values.count - 1
    var depthBudget = 2 * (Int.bitWidth - 1 - values.count.leadingZeroBitCount)
    var setAside: [(lo: Int, hi: Int, depthBudget: Int)] = []
    while true {
        if depthBudget < 0 {
            heapSortIndices(&order, lo: lo, count: hi - lo + 1, by: values)
        } else {
            while hi - lo > largestInsertionSortSpan {
                let mid = lo + ((hi - lo) >> 1)
                if values[order[mid]] < values[order[lo]] { order.swapAt(mid, lo) }
                if values[order[hi]] < values[order[mid]] { order.swapAt(hi, mid) }
                if values[order[mid]] < values[order[lo]] { order.swapAt(mid, lo) }
                let pivot = values[order[mid]]
                var left = lo, right = hi - 1
                order.swapAt(mid, right)
                while true {
                    // The median-of-three placed values <= pivot at lo and >= pivot at hi - 1, so both scans stop
                    // inside the range.
                    repeat { left += 1 } while values[order[left]] < pivot
                    repeat { right -= 1 } while pivot < values[order[right]]
                    if left >= right { break }
                    order.swapAt(left, right)
                }
                order.swapAt(left, hi - 1)
                depthBudget -= 1
                if left - lo < hi - left {
                    setAside.append((left + 1, hi, depthBudget))
                    hi = left - 1
                } else {
                    setAside.append((lo, left - 1, depthBudget))
                    lo = left + 1
                }
            }
            if lo < hi {
                for i in (lo + 1)...hi {
                    let moving = order[i]
                    var j = i
                    while j > lo && values[moving] < values[order[j - 1]] {
                        order[j] = order[j - 1]
                        j -= 1
                    }
                    order[j] = moving
                }
            }
        }
        guard let next = setAside.popLast() else { break }
        (lo, hi, depthBudget) = next
    }
    return order
}

/// numpy 1.19's `aheapsort` on `order[lo ..< lo + count]`: build a max-heap (1-based, children 2i and 2i + 1,
/// the right child taken when strictly larger), then repeatedly move the root to the end and sift down.
private func heapSortIndices(_ order: inout [Int], lo: Int, count: Int, by values: [Int]) {
    // Heap position p (1-based) lives at order[lo + p - 1].
    func at(_ p: Int) -> Int { order[lo + p - 1] }
    func siftDown(_ moving: Int, from start: Int, size: Int) {
        var i = start, child = 2 * start
        while child <= size {
            if child < size && values[at(child)] < values[at(child + 1)] { child += 1 }
            guard values[moving] < values[at(child)] else { break }
            order[lo + i - 1] = at(child)
            i = child
            child += child
        }
        order[lo + i - 1] = moving
    }
    var size = count
    for start in stride(from: size >> 1, to: 0, by: -1) {
        siftDown(at(start), from: start, size: size)
    }
    while size > 1 {
        let moving = at(size)
        order[lo + size - 1] = at(1)
        size -= 1
        siftDown(moving, from: 1, size: size)
    }
}

/// scikit-learn 0.23.2's `GroupKFold(n_splits=k).split(samples, groups=groups)` with numpy 1.19.1: `groups` holds
/// one label per sample. The distinct labels are sorted (`np.unique`: by Unicode code point, as python compares
/// strings) and weighted by their number of samples; they are visited heaviest first, in the reverse of
/// `numpy119Argsort` of the weights (so ties go to the later-sorted label first, as far as introsort keeps
/// them), each joining the fold with the smallest total weight so far (the lowest fold index on ties, as
/// `np.argmin`). Fold f validates on the samples whose group joined f and trains on the rest, both in
/// ascending sample order. Needs 2 <= k <= the number of distinct labels.
public func groupKFoldSplits(groups: [String], folds k: Int) -> [(train: [Int], validation: [Int])] {
    let labels = Array(Set(groups)).sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
    precondition(k >= 2 && k <= labels.count, "GroupKFold needs 2 <= k <= number of groups")
    let labelIndex = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
    let groupOfSample = groups.compactMap { labelIndex[$0] }
    var weight = [Int](repeating: 0, count: labels.count)
    for group in groupOfSample { weight[group] += 1 }
    var foldWeight = [Int](repeating: 0, count: k)
    var foldOfGroup = [Int](repeating: 0, count: labels.count)
    for group in numpy119Argsort(weight).reversed() {
        let lightest = foldWeight.indices.min { (foldWeight[$0], $0) < (foldWeight[$1], $1) } ?? 0
        foldWeight[lightest] += weight[group]
        foldOfGroup[group] = lightest
    }
    return (0..<k).map { fold in
        let inFold = groupOfSample.map { foldOfGroup[$0] == fold }
        return (train: groupOfSample.indices.filter { !inFold[$0] }, validation: groupOfSample.indices.filter { inFold[$0] })
    }
}
