import IECore

/// A 3-D image in NIfTI storage order: data index = (z * ny + y) * nx + x, X fastest.
/// Shape, spacing and origin are (Z, Y, X) triples as everywhere in the configs (SPEC conventions).
/// `direction` is the 3x3 rotation (row-major, world = origin + direction * (index * spacing)) in (x, y, z)
/// world/index order as NIfTI and ITK use it; `geometry` keeps the exact NIfTI qform/sform for writing back.
/// World coordinates are NIfTI's RAS+ millimetres, nibabel's `img.affine` converted to mm (`NIfTI` documents how
/// spacing, origin and direction are taken from the header, and where SimpleITK's differ).
public struct Volume<T>: @unchecked Sendable {
    public var shape: Shape3D
    public var spacing: (z: Double, y: Double, x: Double)
    public var origin: (z: Double, y: Double, x: Double)
    public var direction: [Double]
    public var geometry: NIfTIGeometry?
    public var data: [T]

    public init(shape: Shape3D, spacing: (z: Double, y: Double, x: Double) = (1, 1, 1),
                origin: (z: Double, y: Double, x: Double) = (0, 0, 0),
                direction: [Double] = [1, 0, 0, 0, 1, 0, 0, 0, 1], geometry: NIfTIGeometry? = nil, data: [T]) {
        precondition(data.count == shape.count, "data count \(data.count) does not match shape \(shape)")
        self.shape = shape
        self.spacing = spacing
        self.origin = origin
        self.direction = direction
        self.geometry = geometry
        self.data = data
    }

    public init(shape: Shape3D, repeating value: T,
                spacing: (z: Double, y: Double, x: Double) = (1, 1, 1)) {
        self.init(shape: shape, spacing: spacing, data: [T](repeating: value, count: shape.count))
    }

    public var count: Int { shape.count }

    @inline(__always) public func index(_ z: Int, _ y: Int, _ x: Int) -> Int { shape.index(z, y, x) }

    public subscript(z: Int, y: Int, x: Int) -> T {
        get { data[index(z, y, x)] }
        set { data[index(z, y, x)] = newValue }
    }

    /// Same geometry, other voxel values.
    public func with<U>(data newData: [U]) -> Volume<U> {
        Volume<U>(shape: shape, spacing: spacing, origin: origin, direction: direction, geometry: geometry, data: newData)
    }

    public func map<U>(_ f: (T) -> U) -> Volume<U> { with(data: data.map(f)) }

    public func sameShape<U>(as other: Volume<U>) -> Bool {
        shape == other.shape
    }

    /// The (z, y, x) of a flat data index, for error messages.
    public func position(ofIndex i: Int) -> Shape3D {
        shape.coordinates(i)
    }
}

extension Volume where T == Float {
    /// Throws `IEError.badInput` at the first NaN or infinite voxel: intensities must be finite (SPEC §2), and a
    /// NaN would otherwise travel through normalisation into the network and the label conversion.
    public func requireFiniteVoxels(what: String, file: String? = nil, line: Int? = nil) throws {
        guard let bad = data.firstIndex(where: { !$0.isFinite }) else { return }
        let p = position(ofIndex: bad)
        throw IEError.badInput("\(what) has a \(data[bad].isNaN ? "NaN" : "infinite") voxel at (z=\(p.z), y=\(p.y), x=\(p.x)), expected finite intensities", file: file, line: line)
    }
}

/// The NIfTI header fields that define world geometry, kept as read (translations and sform converted to mm,
/// with the units field saying mm, when the header used meters or microns) so a written file carries exactly
/// the qform/sform of the image it was derived from.
public struct NIfTIGeometry: Sendable, Equatable {
    public var qformCode: Int32
    public var sformCode: Int32
    public var quaternB: Float, quaternC: Float, quaternD: Float
    public var qoffsetX: Float, qoffsetY: Float, qoffsetZ: Float
    public var qfac: Float
    public var srowX: [Float], srowY: [Float], srowZ: [Float]
    public var xyztUnits: Int32
    /// The signs (x, y, z) of pixdim[1...3] as read, written back so that SimpleITK, which flips a direction
    /// axis for a negative pixdim, reads a written copy as it read the input.
    public var pixdimSigns: [Float]

    public init(qformCode: Int32 = 1, sformCode: Int32 = 0, quaternB: Float = 0, quaternC: Float = 0, quaternD: Float = 0,
                qoffsetX: Float = 0, qoffsetY: Float = 0, qoffsetZ: Float = 0, qfac: Float = 1,
                srowX: [Float] = [1, 0, 0, 0], srowY: [Float] = [0, 1, 0, 0], srowZ: [Float] = [0, 0, 1, 0],
                xyztUnits: Int32 = 2, pixdimSigns: [Float] = [1, 1, 1]) {
        self.qformCode = qformCode; self.sformCode = sformCode
        self.quaternB = quaternB; self.quaternC = quaternC; self.quaternD = quaternD
        self.qoffsetX = qoffsetX; self.qoffsetY = qoffsetY; self.qoffsetZ = qoffsetZ
        self.qfac = qfac
        self.srowX = srowX; self.srowY = srowY; self.srowZ = srowZ
        self.xyztUnits = xyztUnits
        self.pixdimSigns = pixdimSigns
    }
}
