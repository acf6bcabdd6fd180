import CNIfTI
import Foundation
import IECore

/// NIfTI-1 voxel types this package reads (all of them) and writes (all of them too; uint8, int16 and float32
/// are the ones the tools use).
public enum NIfTIDataType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 2, int16 = 4, int32 = 8, float32 = 16, float64 = 64
    case int8 = 256, uint16 = 512, uint32 = 768, int64 = 1024, uint64 = 1280

    public var bytesPerVoxel: Int {
        switch self {
        case .uint8, .int8: return 1
        case .int16, .uint16: return 2
        case .int32, .uint32, .float32: return 4
        case .int64, .uint64, .float64: return 8
        }
    }

    public var description: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .int16: return "int16"
        case .uint16: return "uint16"
        case .int32: return "int32"
        case .uint32: return "uint32"
        case .int64: return "int64"
        case .uint64: return "uint64"
        case .float32: return "float32"
        case .float64: return "float64"
        }
    }

    public var isInteger: Bool { self != .float32 && self != .float64 }

    /// The representable range of an integer type (as Doubles, for clamping on write).
    var integerRange: ClosedRange<Double> {
        switch self {
        case .uint8: return 0...255
        case .int8: return -128...127
        case .int16: return -32768...32767
        case .uint16: return 0...65535
        case .int32: return -2147483648...2147483647
        case .uint32: return 0...4294967295
        case .int64: return -9.223372036854775808e18...9.223372036854774784e18
        case .uint64: return 0...1.8446744073709549568e19
        case .float32, .float64: return -Double.infinity...Double.infinity
        }
    }
}

/// What the header of a NIfTI file says, without its voxels.
/// Spacing, origin and shape are (Z, Y, X) as everywhere in the toolbox, in mm; `affine` is the 4x4 voxel-to-world
/// matrix (rows x, y, z, 1; RAS+ world as in nibabel's `img.affine`, converted to mm as SimpleITK converts
/// meters and microns) that origin and direction were taken from.
public struct NIfTIHeaderInfo: Sendable {
    public var path: String
    /// dim[1] ... dim[dim[0]] of the header, i.e. (x, y, z, t, ...).
    public var dims: [Int]
    /// The raw datatype code; `dataType` is nil for types we do not read (complex, RGB, float128).
    public var datatypeCode: Int32
    public var dataType: NIfTIDataType? { NIfTIDataType(rawValue: datatypeCode) }
    public var shape: Shape3D
    public var spacing: (z: Double, y: Double, x: Double)
    public var origin: (z: Double, y: Double, x: Double)
    public var direction: [Double]
    public var affine: [[Double]]
    public var geometry: NIfTIGeometry
    /// Voxel scaling as stored.
    public var sclSlope: Double
    public var sclInter: Double
    /// The scaling applied on read, as SimpleITK (InnerEye's reader) applies it: a slope that is not finite or
    /// below double epsilon in size counts as 1 and a non-finite intercept as 0, but the intercept is still added
    /// (the NIfTI standard and nibabel drop the intercept with a zero slope; ITK does not). nil when that is
    /// the identity.
    public var scaling: (slope: Double, inter: Double)? {
        let slope = sclSlope.isFinite && abs(sclSlope) >= Double.ulpOfOne ? sclSlope : 1
        let inter = sclInter.isFinite ? sclInter : 0
        return slope == 1 && inter == 0 ? nil : (slope, inter)
    }
    public var hasScaling: Bool { scaling != nil }
    /// Where the voxels start in the (uncompressed) file, and whether they are stored big-endian here.
    public var voxelOffset: Int
    public var byteSwapped: Bool = false
    /// "n+1": a single-file NIfTI-1 image, the only kind the toolbox reads.
    public var isSingleFileNIfTI: Bool

    /// A 3-D image: at least three dimensions, and every dimension past the third of length 1
    /// (a 4-D file with a single time point is a volume; a 2-D image or a time series is not).
    public var isVolume3D: Bool { dims.count >= 3 && dims.dropFirst(3).allSatisfy { $0 == 1 } }

    public func requireVolume3D() throws {
        guard isVolume3D else {
            let shown = dims.map(String.init).joined(separator: "x")
            throw IEError.badInput("image has \(dims.count) dimension(s) of size \(shown) (x, y, z, ...), expected a 3-D volume", file: path)
        }
    }
}

/// Reading and writing NIfTI-1 images (`.nii`, `.nii.gz`) through libnifti.
///
/// What the tools compute with follows SimpleITK as InnerEye calls it (`sitk.ReadImage`; checked against it in
/// NIfTISimpleITKParityTests): spacing is |pixdim[1...3]| in mm, converted from meters (x1000) or microns
/// (x0.001) when xyzt_units says so; voxel values get scl_slope/scl_inter as ITK applies them (`scaling`).
/// Origin and direction, which no result depends on, follow nibabel's `img.affine` (in mm): the sform when
/// sform_code != 0, else the qform when qform_code != 0, else the Analyze-style base affine (x flipped, centred);
/// direction is the affine's 3x3 part with unit columns. ITK picks differently when qform and sform disagree
/// (it prefers the qform unless sform_code is 1), uses origin 0 and identity without either, and flips a
/// direction axis for a negative pixdim. A written image therefore carries the input's header geometry itself:
/// the qform/sform fields (converted to mm) and pixdim's signs are kept in `Volume.geometry`, and `write`
/// copies them back while they still describe the volume, so SimpleITK reads a written copy as it read the input.
public enum NIfTI {
    private static let quietLibrary: Void = { nifti_set_debug_level(0) }()
    /// Every datatype code of the NIfTI-1 standard (nifti1.h), the ones libnifti's header check accepts.
    private static let libniftiDatatypes: Set<Int> = [2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304]

    // MARK: Reading

    /// Reads only the header (cheap even for `.nii.gz`: only the first bytes are inflated).
    public static func readHeader(_ path: String) throws -> NIfTIHeaderInfo {
        _ = quietLibrary
        try requireExistingFile(path)
        try requireNIfTIMagic(path)
        var swapped: Int32 = 0
        guard let raw = nifti_read_header(path, &swapped, 1) else {
            throw IEError.badInput("cannot read a NIfTI-1 header (not a NIfTI file, or corrupt)", file: path)
        }
        defer { free(raw) }
        var info = headerInfo(raw.pointee, path: path)
        info.byteSwapped = swapped != 0
        return info
    }

    /// Reads a 3-D image as Float voxels, with scl_slope/scl_inter applied as SimpleITK does (`scaling`).
    /// Throws `IEError.badInput` naming the file for a missing, unreadable, non-3-D or unsupported image.
    public static func read(_ path: String) throws -> Volume<Float> {
        let info = try readHeader(path)
        try info.requireVolume3D()
        guard let type = info.dataType else {
            throw IEError.badInput("unsupported NIfTI datatype \(info.datatypeCode), expected one of "
                + NIfTIDataType.allCases.map(\.description).joined(separator: ", "), file: path)
        }
        for (axis, value) in [("x", info.spacing.x), ("y", info.spacing.y), ("z", info.spacing.z)]
        where !(value.isFinite && value > 0) {
            throw IEError.badInput("voxel spacing (pixdim) along \(axis) is \(value), expected a positive finite size in mm", file: path)
        }
        let count = info.shape.z * info.shape.y * info.shape.x
        guard count <= maximumVoxels else {
            throw IEError.badInput("image of \(info.shape.x) x \(info.shape.y) x \(info.shape.z) = \(count) voxels, more than the limit of \(maximumVoxels) (IE_MAX_IMAGE_VOXELS)", file: path)
        }
        let bytes = try readVoxelBytes(path, header: info, count: count, bytesPerVoxel: type.bytesPerVoxel)
        let values = bytes.withUnsafeBytes { raw in
            convertToFloat(raw.baseAddress!, count: count, type: type,
                           slope: info.scaling?.slope, inter: info.scaling?.inter ?? 0)
        }
        return Volume(shape: info.shape, spacing: info.spacing, origin: info.origin, direction: info.direction,
                      geometry: info.geometry, data: values)
    }

    /// The raw voxel bytes (native byte order) of a single-file NIfTI image, read through znzlib.
    static func readVoxelBytes(_ path: String, header: NIfTIHeaderInfo, count: Int, bytesPerVoxel: Int) throws -> [UInt8] {
        guard header.isSingleFileNIfTI else {
            throw IEError.badInput("not a single-file NIfTI-1 image (magic \"n+1\"), expected .nii or .nii.gz", file: path)
        }
        guard header.voxelOffset >= 348 else {
            throw IEError.badInput("NIfTI vox_offset \(header.voxelOffset < 0 ? "is not a usable byte offset" : "\(header.voxelOffset) is inside the header"), expected at least 352", file: path)
        }
        let compressed = path.hasSuffix(".gz")
        guard let opened = znzopen(path, "rb", compressed ? 1 : 0) else {
            throw IEError.badInput("cannot open file: \(String(cString: strerror(errno)))", file: path)
        }
        var closable: znzFile? = opened
        let file = opened
        defer { _ = Xznzclose(&closable) }
        let total = count * bytesPerVoxel
        // The header's sizes are not trusted with memory: a plain file must hold them before anything is allocated,
        // and a compressed one is inflated in chunks, so a lying header costs no more memory than the file's data.
        if !compressed {
            // stat, not lstat: the size of the file a symbolic link points to.
            var status = stat()
            let fileSize = stat(path, &status) == 0 ? Int(status.st_size) : nil
            if let fileSize, fileSize < header.voxelOffset + total {
                throw IEError.badInput("NIfTI voxel data truncated: the file has \(max(0, fileSize - header.voxelOffset)) bytes after vox_offset \(header.voxelOffset), the header's \(count) voxels of \(bytesPerVoxel) bytes need \(total)", file: path)
            }
        }
        // gzseek on a read stream inflates forward, which is what we want (no random access needed).
        // znzseek returns fseek's 0 for plain files but gzseek's new offset for compressed ones: ask znztell.
        guard znzseek(file, header.voxelOffset, SEEK_SET) >= 0, znztell(file) == header.voxelOffset else {
            throw IEError.badInput("NIfTI file ends before its voxel data (vox_offset \(header.voxelOffset))", file: path)
        }
        let chunk = 1 << 24
        var bytes = [UInt8]()
        bytes.reserveCapacity(min(total, chunk))
        while bytes.count < total {
            let want = min(chunk, total - bytes.count)
            let start = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: want))
            let got = bytes.withUnsafeMutableBytes { znzread($0.baseAddress! + start, 1, want, file) }
            guard got >= 0 else {
                throw IEError.badInput("corrupt gzip data (bad CRC or deflate stream) in the voxel data", file: path)
            }
            guard got == want else {
                throw IEError.badInput("NIfTI voxel data truncated: \(start + got) of \(total) bytes, expected \(count) voxels of \(bytesPerVoxel) bytes", file: path)
            }
        }
        // gzip's CRC and length are checked only when the stream's end is read: ask for one byte more, so damaged
        // compressed data that still inflates to the right size is an error, not wrong voxels.
        if compressed {
            var probe: UInt8 = 0
            let extra = znzread(&probe, 1, 1, file)
            var code: Int32 = Z_OK
            var message = file.pointee.zfptr.flatMap { gzerror($0, &code) }.map { String(cString: $0) } ?? ""
            if message.hasPrefix(path + ": ") { message.removeFirst(path.count + 2) }  // zlib names the file too
            guard extra >= 0, code == Z_OK || code == Z_STREAM_END else {
                throw IEError.badInput("corrupt gzip data after the voxel data was inflated (\(message.isEmpty ? "bad CRC or length" : message))", file: path)
            }
        }
        if header.byteSwapped && bytesPerVoxel > 1 {
            for start in stride(from: 0, to: total, by: bytesPerVoxel) {
                bytes[start..<(start + bytesPerVoxel)].reverse()
            }
        }
        return bytes
    }

    /// Checks the raw header ourselves, so that libnifti (which prints its own complaint to stderr) is only handed
    /// files that look like NIfTI-1 with sane dimensions: sizeof_hdr 348 in either byte order, the "n+1"/"ni1"
    /// magic, dim[0] in 1...7 and dim[1...dim[0]] >= 1. Every failure is one error line naming the file.
    private static func requireNIfTIMagic(_ path: String) throws {
        guard let opened = znzopen(path, "rb", path.hasSuffix(".gz") ? 1 : 0) else {
            throw IEError.badInput("cannot open file: \(String(cString: strerror(errno)))", file: path)
        }
        var closable: znzFile? = opened
        defer { _ = Xznzclose(&closable) }
        var first = [UInt8](repeating: 0, count: 348)
        let got = first.withUnsafeMutableBytes { znzread($0.baseAddress, 1, 348, opened) }
        let sizeLE = UInt32(first[0]) | UInt32(first[1]) << 8 | UInt32(first[2]) << 16 | UInt32(first[3]) << 24
        let looksLikeNIfTI = got == 348 && (sizeLE == 348 || sizeLE.byteSwapped == 348)
            && first[344] == UInt8(ascii: "n") && (first[345] == UInt8(ascii: "+") || first[345] == UInt8(ascii: "i"))
            && first[346] == UInt8(ascii: "1")
        guard looksLikeNIfTI else {
            throw IEError.badInput("not a NIfTI-1 image (no 348-byte header with magic \"n+1\"), expected .nii or .nii.gz", file: path)
        }
        let littleEndian = sizeLE == 348
        func int16(at offset: Int) -> Int {
            let raw = UInt16(first[offset]) | UInt16(first[offset + 1]) << 8
            return Int(Int16(bitPattern: littleEndian ? raw : raw.byteSwapped))
        }
        // dim is short[8] at byte 40
        let rank = int16(at: 40)
        guard (1...7).contains(rank) else {
            throw IEError.badInput("NIfTI header dim[0] is \(rank), expected 1 to 7 dimensions", file: path)
        }
        for axis in 1...rank where int16(at: 40 + 2 * axis) < 1 {
            throw IEError.badInput("NIfTI header dim[\(axis)] is \(int16(at: 40 + 2 * axis)), expected a size of at least 1", file: path)
        }
        // datatype is short at byte 70; libnifti rejects (with its own stderr line) codes outside NIfTI-1's table
        let code = int16(at: 70)
        guard libniftiDatatypes.contains(code) else {
            throw IEError.badInput("unsupported NIfTI datatype \(code), expected one of "
                + NIfTIDataType.allCases.map(\.description).joined(separator: ", "), file: path)
        }
    }

    /// A regular file, symbolic links followed: a FIFO would block the reader forever, a device has no end.
    private static func requireExistingFile(_ path: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw IEError.badInput("file not found, expected a NIfTI image (.nii or .nii.gz)", file: path)
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            let kind: String
            switch status.st_mode & S_IFMT {
            case S_IFDIR: kind = "a directory"
            case S_IFIFO: kind = "a FIFO"
            case S_IFCHR, S_IFBLK: kind = "a device"
            case S_IFSOCK: kind = "a socket"
            default: kind = "not a regular file"
            }
            throw IEError.badInput("\(kind), expected a NIfTI image file (.nii or .nii.gz)", file: path)
        }
    }

    /// The most voxels an image may have (1024^3 by default; `IE_MAX_IMAGE_VOXELS` sets another limit). A header
    /// is not trusted with memory: 1 MB of gzip can claim and inflate to a 1024^3 volume, and every voxel costs
    /// 4 bytes as Float besides its stored bytes.
    public static var maximumVoxels: Int {
        if let text = ProcessInfo.processInfo.environment["IE_MAX_IMAGE_VOXELS"], let value = Int(text), value > 0 {
            return value
        }
        return 1 << 30
    }

    private static func convertToFloat(_ raw: UnsafeRawPointer, count: Int, type: NIfTIDataType,
                                       slope: Double?, inter: Double) -> [Float] {
        func convert<S>(_ source: S.Type, _ toDouble: (S) -> Double) -> [Float] {
            let typed = raw.bindMemory(to: S.self, capacity: count)
            let buffer = UnsafeBufferPointer(start: typed, count: count)
            if let slope {
                return buffer.map { Float(toDouble($0) * slope + inter) }
            }
            return buffer.map { Float(toDouble($0)) }
        }
        switch type {
        case .uint8: return convert(UInt8.self) { Double($0) }
        case .int8: return convert(Int8.self) { Double($0) }
        case .int16: return convert(Int16.self) { Double($0) }
        case .uint16: return convert(UInt16.self) { Double($0) }
        case .int32: return convert(Int32.self) { Double($0) }
        case .uint32: return convert(UInt32.self) { Double($0) }
        case .int64: return convert(Int64.self) { Double($0) }
        case .uint64: return convert(UInt64.self) { Double($0) }
        case .float32:
            if slope == nil {
                return Array(UnsafeBufferPointer(start: raw.bindMemory(to: Float.self, capacity: count), count: count))
            }
            return convert(Float.self) { Double($0) }
        case .float64: return convert(Double.self) { $0 }
        }
    }

    static func headerInfo(_ h: nifti_1_header, path: String) -> NIfTIHeaderInfo {
        let dimArray = withUnsafeBytes(of: h.dim) { Array($0.bindMemory(to: Int16.self)) }
        let pixdim = withUnsafeBytes(of: h.pixdim) { Array($0.bindMemory(to: Float.self)) }
        let ndim = max(0, min(7, Int(dimArray[0])))
        let dims = (0..<ndim).map { Int(dimArray[$0 + 1]) }
        func dim(_ i: Int) -> Int { i < dims.count ? max(dims[i], 1) : 1 }
        let shape = Shape3D(z: dim(2), y: dim(1), x: dim(0))
        // SimpleITK (InnerEye's reader) converts meters and microns to mm, spacing and origin alike; nibabel
        // ignores the units. Metrics in mm and sigma_mm follow SimpleITK, so everything below is in mm.
        let unitScale = millimetresPerUnit(xyztUnits: Int32(h.xyzt_units))
        let spacing = (z: Double(abs(pixdim[3])) * unitScale, y: Double(abs(pixdim[2])) * unitScale,
                       x: Double(abs(pixdim[1])) * unitScale)

        let magic = withUnsafeBytes(of: h.magic) { Array($0) }
        let isSingleFile = magic[0] == UInt8(ascii: "n") && magic[1] == UInt8(ascii: "+") && magic[2] == UInt8(ascii: "1")
        let isNIfTI = magic[0] == UInt8(ascii: "n") && (magic[1] == UInt8(ascii: "+") || magic[1] == UInt8(ascii: "i"))
            && magic[2] == UInt8(ascii: "1")
        // The kept qform/sform are converted to mm with the spacing (and the units field says mm), so that a
        // written copy reads back in SimpleITK as the input did. The signs of pixdim[1...3] are kept for the same
        // reason: ITK turns a negative pixdim into a flipped direction axis, nibabel ignores the sign.
        let scale = Float(unitScale)
        let geometry = NIfTIGeometry(
            qformCode: isNIfTI ? Int32(h.qform_code) : 0, sformCode: isNIfTI ? Int32(h.sform_code) : 0,
            quaternB: h.quatern_b, quaternC: h.quatern_c, quaternD: h.quatern_d,
            qoffsetX: h.qoffset_x * scale, qoffsetY: h.qoffset_y * scale, qoffsetZ: h.qoffset_z * scale,
            qfac: pixdim[0] < 0 ? -1 : 1,
            srowX: [h.srow_x.0, h.srow_x.1, h.srow_x.2, h.srow_x.3].map { $0 * scale },
            srowY: [h.srow_y.0, h.srow_y.1, h.srow_y.2, h.srow_y.3].map { $0 * scale },
            srowZ: [h.srow_z.0, h.srow_z.1, h.srow_z.2, h.srow_z.3].map { $0 * scale },
            xyztUnits: unitScale == 1 ? Int32(h.xyzt_units) : (Int32(h.xyzt_units) & ~0x07) | niftiUnitsMillimetre,
            pixdimSigns: (1...3).map { pixdim[$0] < 0 ? -1 : 1 })
        let affine = affine(of: geometry, spacing: spacing, shape: shape)
        let (origin, direction) = originAndDirection(of: affine)
        return NIfTIHeaderInfo(path: path, dims: dims, datatypeCode: Int32(h.datatype), shape: shape,
                               spacing: spacing, origin: origin, direction: direction, affine: affine,
                               geometry: geometry, sclSlope: Double(h.scl_slope), sclInter: Double(h.scl_inter),
                               voxelOffset: h.vox_offset.isFinite && abs(h.vox_offset) < 1e15 ? Int(h.vox_offset) : -1,
                               isSingleFileNIfTI: isSingleFile)
    }

    // MARK: Geometry

    /// NIFTI_UNITS_MM, the spatial unit code of the xyzt_units field (its low three bits).
    static let niftiUnitsMillimetre: Int32 = 2

    /// How many mm one spatial unit of the header is, as ITK's NiftiImageIO scales spacing and origin:
    /// NIFTI_UNITS_METER (1) 1000, NIFTI_UNITS_MICRON (3) 0.001, anything else (mm, unknown) 1.
    static func millimetresPerUnit(xyztUnits: Int32) -> Double {
        switch xyztUnits & 0x07 {
        case 1: return 1000
        case 3: return 0.001
        default: return 1
        }
    }

    /// The voxel-to-world affine (4x4, rows x, y, z, 1) that nibabel's `img.affine` gives for these header
    /// fields: sform if sform_code != 0, else qform if qform_code != 0, else the Analyze base affine.
    public static func affine(of g: NIfTIGeometry, spacing: (z: Double, y: Double, x: Double),
                              shape: Shape3D) -> [[Double]] {
        if g.sformCode != 0 {
            return [g.srowX.map(Double.init), g.srowY.map(Double.init), g.srowZ.map(Double.init), [0, 0, 0, 1]]
        }
        let zooms = [spacing.x, spacing.y, spacing.z]
        if g.qformCode != 0 {
            let r = quaternionRotation(b: Double(g.quaternB), c: Double(g.quaternC), d: Double(g.quaternD))
            var m = [[Double]](repeating: [0, 0, 0, 0], count: 4)
            let qfac: Double = g.qfac < 0 ? -1 : 1
            for row in 0..<3 {
                for col in 0..<3 {
                    m[row][col] = r[row][col] * zooms[col] * (col == 2 ? qfac : 1)
                }
            }
            m[0][3] = Double(g.qoffsetX); m[1][3] = Double(g.qoffsetY); m[2][3] = Double(g.qoffsetZ)
            m[3][3] = 1
            return m
        }
        // nibabel's Analyze-style default: x flipped, voxel centre of the volume at the world origin.
        let counts = [shape.x, shape.y, shape.z]
        var m = [[Double]](repeating: [0, 0, 0, 0], count: 4)
        for axis in 0..<3 {
            let zoom = axis == 0 ? -zooms[axis] : zooms[axis]
            m[axis][axis] = zoom
            m[axis][3] = -Double(counts[axis] - 1) / 2 * zoom
        }
        m[3][3] = 1
        return m
    }

    /// The rotation of a unit quaternion (a, b, c, d) with a = sqrt(1 - b² - c² - d²) (NIfTI-1 qform).
    static func quaternionRotation(b inB: Double, c inC: Double, d inD: Double) -> [[Double]] {
        var b = inB, c = inC, d = inD
        var a = 1 - (b * b + c * c + d * d)
        if a < 1e-7 {
            // Numerically a 180° rotation: renormalise (b, c, d) and take a = 0, as the NIfTI docs say.
            let n = (b * b + c * c + d * d).squareRoot()
            if n > 0 { b /= n; c /= n; d /= n }
            a = 0
        } else {
            a = a.squareRoot()
        }
        return [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ]
    }

    /// Origin (z, y, x) and direction (row-major 3x3, unit columns, world x/y/z by index i/j/k) of an affine.
    static func originAndDirection(of affine: [[Double]]) -> (origin: (z: Double, y: Double, x: Double), direction: [Double]) {
        var direction = [Double](repeating: 0, count: 9)
        for col in 0..<3 {
            let norm = (0..<3).map { affine[$0][col] * affine[$0][col] }.reduce(0, +).squareRoot()
            for row in 0..<3 {
                direction[row * 3 + col] = norm > 0 ? affine[row][col] / norm : (row == col ? 1 : 0)
            }
        }
        return ((z: affine[2][3], y: affine[1][3], x: affine[0][3]), direction)
    }

    /// The affine a volume's spacing, origin and direction describe.
    public static func affine<T>(of volume: Volume<T>) -> [[Double]] {
        let zooms = [volume.spacing.x, volume.spacing.y, volume.spacing.z]
        let t = [volume.origin.x, volume.origin.y, volume.origin.z]
        var m = [[Double]](repeating: [0, 0, 0, 0], count: 4)
        for row in 0..<3 {
            for col in 0..<3 { m[row][col] = volume.direction[row * 3 + col] * zooms[col] }
            m[row][3] = t[row]
        }
        m[3][3] = 1
        return m
    }

    /// Header geometry describing a volume's spacing, origin and direction from scratch: sform and qform both
    /// set (code 1, scanner anatomical, as ITK writes them), millimetres.
    public static func freshGeometry<T>(for volume: Volume<T>) -> NIfTIGeometry {
        let a = affine(of: volume)
        let q = quaternion(ofDirection: volume.direction)
        return NIfTIGeometry(qformCode: 1, sformCode: 1, quaternB: Float(q.b), quaternC: Float(q.c), quaternD: Float(q.d),
                             qoffsetX: Float(a[0][3]), qoffsetY: Float(a[1][3]), qoffsetZ: Float(a[2][3]),
                             qfac: Float(q.qfac),
                             srowX: a[0].map(Float.init), srowY: a[1].map(Float.init), srowZ: a[2].map(Float.init),
                             xyztUnits: 2)
    }

    /// The NIfTI qform quaternion (b, c, d; a >= 0 implied) and qfac of a direction matrix (row-major,
    /// unit columns). A left-handed matrix gets qfac -1 with its third column negated, as the NIfTI-1
    /// header documentation prescribes; the columns are re-orthonormalised first (Gram-Schmidt).
    static func quaternion(ofDirection direction: [Double]) -> (b: Double, c: Double, d: Double, qfac: Double) {
        var columns = (0..<3).map { col in (0..<3).map { direction[$0 * 3 + col] } }
        func dot(_ u: [Double], _ v: [Double]) -> Double { u[0] * v[0] + u[1] * v[1] + u[2] * v[2] }
        func normalised(_ u: [Double], fallback: [Double]) -> [Double] {
            let n = dot(u, u).squareRoot()
            return n > 1e-12 ? u.map { $0 / n } : fallback
        }
        columns[0] = normalised(columns[0], fallback: [1, 0, 0])
        let p1 = dot(columns[1], columns[0])
        columns[1] = normalised(zip(columns[1], columns[0]).map { $0 - p1 * $1 }, fallback: [0, 1, 0])
        let p20 = dot(columns[2], columns[0]), p21 = dot(columns[2], columns[1])
        columns[2] = (0..<3).map { columns[2][$0] - p20 * columns[0][$0] - p21 * columns[1][$0] }
        let cross = [columns[0][1] * columns[1][2] - columns[0][2] * columns[1][1],
                     columns[0][2] * columns[1][0] - columns[0][0] * columns[1][2],
                     columns[0][0] * columns[1][1] - columns[0][1] * columns[1][0]]
        columns[2] = normalised(columns[2], fallback: cross)
        var qfac = 1.0
        if dot(columns[2], cross) < 0 {
            qfac = -1
            columns[2] = columns[2].map { -$0 }
        }
        // r[row][col]
        let r = (0..<3).map { row in (0..<3).map { col in columns[col][row] } }
        var a = 0.0, b = 0.0, c = 0.0, d = 0.0
        let trace = r[0][0] + r[1][1] + r[2][2]
        if trace > 0 {
            a = 0.5 * (1 + trace).squareRoot()
            b = 0.25 * (r[2][1] - r[1][2]) / a
            c = 0.25 * (r[0][2] - r[2][0]) / a
            d = 0.25 * (r[1][0] - r[0][1]) / a
        } else if r[0][0] >= r[1][1] && r[0][0] >= r[2][2] {
            b = 0.5 * (1 + r[0][0] - r[1][1] - r[2][2]).squareRoot()
            a = 0.25 * (r[2][1] - r[1][2]) / b
            c = 0.25 * (r[0][1] + r[1][0]) / b
            d = 0.25 * (r[0][2] + r[2][0]) / b
        } else if r[1][1] >= r[2][2] {
            c = 0.5 * (1 - r[0][0] + r[1][1] - r[2][2]).squareRoot()
            a = 0.25 * (r[0][2] - r[2][0]) / c
            b = 0.25 * (r[0][1] + r[1][0]) / c
            d = 0.25 * (r[1][2] + r[2][1]) / c
        } else {
            d = 0.5 * (1 - r[0][0] - r[1][1] + r[2][2]).squareRoot()
            a = 0.25 * (r[1][0] - r[0][1]) / d
            b = 0.25 * (r[0][2] + r[2][0]) / d
            c = 0.25 * (r[1][2] + r[2][1]) / d
        }
        if a < 0 { b = -b; c = -c; d = -d }   // the header stores only b, c, d and implies a >= 0
        return (b, c, d, qfac)
    }

    /// The geometry to write for a volume: its stored header geometry when that still describes the volume's
    /// spacing, origin and direction (so a derived image keeps its source's qform/sform bit for bit), else a
    /// fresh one (e.g. after resampling, or for a volume made from scratch).
    public static func geometryForWriting<T>(_ volume: Volume<T>) -> NIfTIGeometry {
        guard let stored = volume.geometry else { return freshGeometry(for: volume) }
        let fromHeader = affine(of: stored, spacing: volume.spacing, shape: volume.shape)
        let fromVolume = affine(of: volume)
        for row in 0..<3 {
            for col in 0..<4 {
                let tolerance = col == 3 ? 1e-3 * max(1, abs(fromVolume[row][col])) : 1e-4 * max(1, abs(fromVolume[row][col]))
                if abs(fromHeader[row][col] - fromVolume[row][col]) > tolerance {
                    Log.verbose("stored NIfTI geometry no longer matches the volume; writing a fresh qform/sform")
                    return freshGeometry(for: volume)
                }
            }
        }
        return stored
    }

    // MARK: Writing

    /// Writes a 3-D volume as `.nii` or `.nii.gz` (chosen by the path's suffix), atomically.
    /// Values are converted to `datatype`; for integer types they are rounded to nearest and clamped to the
    /// type's range (NaN becomes 0). Geometry: see `geometryForWriting`. scl_slope 1, scl_inter 0.
    public static func write<T: NIfTIVoxel>(_ volume: Volume<T>, to path: String, datatype: NIfTIDataType) throws {
        let compressed: Bool
        if path.hasSuffix(".nii.gz") {
            compressed = true
        } else if path.hasSuffix(".nii") {
            compressed = false
        } else {
            throw IEError.usage("output image must end in .nii or .nii.gz", file: path)
        }
        let s = volume.shape
        guard [s.z, s.y, s.x].allSatisfy({ (1...32767).contains($0) }) else {
            throw IEError.failure("image shape (Z,Y,X) \(s.z),\(s.y),\(s.x) cannot be stored in NIfTI-1, expected 1...32767 per axis", file: path)
        }
        let header = makeHeader(for: volume, datatype: datatype)
        let body = voxelBytes(volume.data, as: datatype)

        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try AtomicFile.createFolder(directory, for: path)
        let temporary = AtomicFile.temporaryPath(for: path)
        var ok = false
        defer { if !ok { unlink(temporary) } }
        guard let file = znzopen(temporary, compressed ? "wb1" : "wb", compressed ? 1 : 0) else {
            throw IEError.failure("cannot create file: \(String(cString: strerror(errno)))", file: temporary)
        }
        var headerCopy = header
        var written = withUnsafeBytes(of: &headerCopy) { znzwrite($0.baseAddress, 1, 348, file) } == 348
        let extender: [UInt8] = [0, 0, 0, 0]     // no header extensions; data starts at vox_offset 352
        written = written && extender.withUnsafeBytes { znzwrite($0.baseAddress, 1, 4, file) } == 4
        written = written && body.withUnsafeBytes { znzwrite($0.baseAddress, 1, $0.count, file) } == body.count
        var closable: znzFile? = file
        let closed = Xznzclose(&closable) == 0
        guard written && closed else {
            throw IEError.failure("write failed: \(String(cString: strerror(errno)))", file: path)
        }
        // znz cannot fsync; reopen to make the bytes durable before the rename publishes them.
        let fd = open(temporary, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
        try AtomicFile.commit(temporary: temporary, to: path)
        ok = true
    }

    static func makeHeader<T>(for volume: Volume<T>, datatype: NIfTIDataType) -> nifti_1_header {
        var dims: [Int32] = [3, Int32(volume.shape.x), Int32(volume.shape.y), Int32(volume.shape.z), 1, 1, 1, 1]
        let made = nifti_make_new_header(&dims, datatype.rawValue)!
        var h = made.pointee
        free(made)
        // libnifti zeroes dim[4...7]; write 1 as ITK and nibabel do, for readers that multiply them in.
        h.dim = (3, Int16(volume.shape.x), Int16(volume.shape.y), Int16(volume.shape.z), 1, 1, 1, 1)
        let g = geometryForWriting(volume)
        withUnsafeMutableBytes(of: &h.pixdim) { raw in
            let p = raw.bindMemory(to: Float.self)
            p[0] = g.qfac < 0 ? -1 : 1
            // pixdim's signs as read (see headerInfo); a malformed signs array counts as all positive.
            let signs = g.pixdimSigns.count == 3 ? g.pixdimSigns : [1, 1, 1]
            p[1] = Float(volume.spacing.x) * signs[0]; p[2] = Float(volume.spacing.y) * signs[1]
            p[3] = Float(volume.spacing.z) * signs[2]
            for i in 4..<8 { p[i] = 1 }
        }
        h.vox_offset = 352
        h.scl_slope = 1
        h.scl_inter = 0
        h.cal_min = 0
        h.cal_max = 0
        h.xyzt_units = CChar(truncatingIfNeeded: g.xyztUnits)
        h.qform_code = Int16(truncatingIfNeeded: g.qformCode)
        h.sform_code = Int16(truncatingIfNeeded: g.sformCode)
        h.quatern_b = g.quaternB; h.quatern_c = g.quaternC; h.quatern_d = g.quaternD
        h.qoffset_x = g.qoffsetX; h.qoffset_y = g.qoffsetY; h.qoffset_z = g.qoffsetZ
        h.srow_x = (g.srowX[0], g.srowX[1], g.srowX[2], g.srowX[3])
        h.srow_y = (g.srowY[0], g.srowY[1], g.srowY[2], g.srowY[3])
        h.srow_z = (g.srowZ[0], g.srowZ[1], g.srowZ[2], g.srowZ[3])
        withUnsafeMutableBytes(of: &h.magic) { raw in
            for (i, byte) in [UInt8(ascii: "n"), UInt8(ascii: "+"), UInt8(ascii: "1"), 0].enumerated() { raw[i] = byte }
        }
        return h
    }

    /// Little-endian (native on every platform Swift on Linux runs on) voxel bytes of `datatype`.
    static func voxelBytes<T: NIfTIVoxel>(_ values: [T], as datatype: NIfTIDataType) -> [UInt8] {
        // Fast path: the element type already is the file type.
        if T.nativeType == datatype {
            return values.withUnsafeBytes { Array($0) }
        }
        // Convert through concrete floating-point arrays: code generic over T would run unspecialised
        // (witness calls per voxel) when called from another module, several times slower.
        // (`as? [Float]` would cast element by element; reinterpreting the storage is free.)
        if T.self == Float.self {
            return values.withUnsafeBytes { convert($0.bindMemory(to: Float.self), to: datatype) }
        }
        let doubles = values.map { $0.niftiDouble }
        return doubles.withUnsafeBufferPointer { convert($0, to: datatype) }
    }

    static func convert<S: BinaryFloatingPoint>(_ values: UnsafeBufferPointer<S>, to datatype: NIfTIDataType) -> [UInt8] {
        let range = datatype.integerRange
        @inline(__always) func integer(_ v: S) -> Double {
            if v.isNaN { return 0 }
            return min(max(Double(v).rounded(), range.lowerBound), range.upperBound)
        }
        @inline(__always) func pack<R>(_ f: (S) -> R) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: values.count * MemoryLayout<R>.stride)
            out.withUnsafeMutableBytes { raw in
                let typed = raw.bindMemory(to: R.self)
                for i in 0..<values.count { typed[i] = f(values[i]) }
            }
            return out
        }
        switch datatype {
        case .uint8: return pack { UInt8(integer($0)) }
        case .int8: return pack { Int8(integer($0)) }
        case .int16: return pack { Int16(integer($0)) }
        case .uint16: return pack { UInt16(integer($0)) }
        case .int32: return pack { Int32(integer($0)) }
        case .uint32: return pack { UInt32(integer($0)) }
        case .int64: return pack { Int64(integer($0)) }
        case .uint64: return pack { UInt64(integer($0)) }
        case .float32: return pack { Float($0) }
        case .float64: return pack { Double($0) }
        }
    }
}

/// Element types a `Volume` can have when written to NIfTI.
public protocol NIfTIVoxel {
    var niftiDouble: Double { get }
    /// The NIfTI type with this exact memory layout, if any (lets `write` copy bytes without converting).
    static var nativeType: NIfTIDataType? { get }
}

extension Float: NIfTIVoxel {
    public var niftiDouble: Double { Double(self) }
    public static var nativeType: NIfTIDataType? { .float32 }
}
extension Double: NIfTIVoxel {
    public var niftiDouble: Double { self }
    public static var nativeType: NIfTIDataType? { .float64 }
}
extension UInt8: NIfTIVoxel {
    public var niftiDouble: Double { Double(self) }
    public static var nativeType: NIfTIDataType? { .uint8 }
}
extension Int8: NIfTIVoxel {
    public var niftiDouble: Double { Double(self) }
    public static var nativeType: NIfTIDataType? { .int8 }
}
extension Int16: NIfTIVoxel {
    public var niftiDouble: Double { Double(self) }
    public static var nativeType: NIfTIDataType? { .int16 }
}
extension UInt16: NIfTIVoxel {
    public var niftiDouble: Double { Double(self) }
    public static var nativeType: NIfTIDataType? { .uint16 }
}
extension Int32: NIfTIVoxel {
    public var niftiDouble: Double { Double(self) }
    public static var nativeType: NIfTIDataType? { .int32 }
}
extension Int: NIfTIVoxel {
    public var niftiDouble: Double { Double(self) }
    public static var nativeType: NIfTIDataType? { .int64 }
}
extension Bool: NIfTIVoxel {
    public var niftiDouble: Double { self ? 1 : 0 }
    public static var nativeType: NIfTIDataType? { nil }
}
