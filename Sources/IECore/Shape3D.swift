/// The one 3-D size or index type of the toolbox: (Z, Y, X), X fastest in memory (volumes, grids, crops,
/// patches, strides). IENet's tensors keep their own NCDHW shape arrays.
public struct Shape3D: Hashable, Sendable, CustomStringConvertible {
    public var z: Int, y: Int, x: Int
    public init(_ z: Int, _ y: Int, _ x: Int) { self.z = z; self.y = y; self.x = x }
    public init(z: Int, y: Int, x: Int) { self.z = z; self.y = y; self.x = x }
    /// From a config triple ([Z, Y, X]).
    public init(_ triple: [Int]) {
        precondition(triple.count == 3, "a (Z, Y, X) triple needs 3 values, got \(triple)")
        self.init(triple[0], triple[1], triple[2])
    }
    public var count: Int { z * y * x }
    public var array: [Int] { [z, y, x] }
    public subscript(axis: Int) -> Int {
        get { axis == 0 ? z : (axis == 1 ? y : x) }
        set { if axis == 0 { z = newValue } else if axis == 1 { y = newValue } else { x = newValue } }
    }
    /// The linear index of voxel (zi, yi, xi).
    @inline(__always) public func index(_ zi: Int, _ yi: Int, _ xi: Int) -> Int { (zi * y + yi) * x + xi }
    /// The voxel of a linear index.
    @inline(__always) public func coordinates(_ i: Int) -> Shape3D { Shape3D(i / (y * x), (i / x) % y, i % x) }
    public var description: String { "(\(z), \(y), \(x))" }
}
