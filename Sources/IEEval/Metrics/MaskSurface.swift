import Foundation
import IECore

/// Which voxels of a binary mask count as its surface.
public enum SurfaceDefinition: Sendable, Equatable {
    /// SimpleITK's `LabelContour` with its defaults (fullyConnected off): a voxel of X with at least one of its
    /// 6 face neighbours inside the image and outside X. The image border is not a boundary, so a mask that
    /// fills the image has no contour. MeanDistance_mm samples distances at these voxels.
    case contourInsideImage
    /// The zero set of SimpleITK's `SignedMaurerDistanceMap` (ITK builds it with a fully connected
    /// BinaryContourImageFilter): a voxel of X with at least one of its 26 neighbours inside the image and
    /// outside X; the image border is not a boundary. MeanDistance_mm measures distances to these voxels.
    case fullyConnectedBoundaryInsideImage
    /// MONAI `get_mask_edges`: X minus its binary erosion by the 6-neighbour cross with the outside of the image
    /// treated as background, i.e. a voxel of X with a face neighbour outside X or outside the image.
    /// Used by the extra metrics HD95, ASSD and surface Dice, so that they match MONAI's numbers.
    case edgeIncludingImageBorder
}

/// A box of voxels [z0, z1) x [y0, y1) x [x0, x1) inside a grid.
public struct VoxelBox: Sendable, Equatable {
    public var z0: Int, z1: Int, y0: Int, y1: Int, x0: Int, x1: Int

    public var isEmpty: Bool { z1 <= z0 || y1 <= y0 || x1 <= x0 }
    public var shape: Shape3D { Shape3D(z1 - z0, y1 - y0, x1 - x0) }

    /// The smallest box holding every true voxel of any of the masks; nil when all are empty.
    public static func bounding(_ masks: [[Bool]], grid: VoxelGrid) -> VoxelBox? {
        var box = VoxelBox(z0: .max, z1: .min, y0: .max, y1: .min, x0: .max, x1: .min)
        var found = false
        for z in 0..<grid.nz {
            for y in 0..<grid.ny {
                let rowStart = grid.index(z, y, 0)
                var first = -1, last = -1
                for mask in masks {
                    mask.withUnsafeBufferPointer { m in
                        for x in 0..<grid.nx where m[rowStart + x] {
                            if first < 0 || x < first { first = x }
                            break
                        }
                        if first >= 0 {
                            for x in stride(from: grid.nx - 1, through: 0, by: -1) where m[rowStart + x] {
                                if x > last { last = x }
                                break
                            }
                        }
                    }
                }
                if first >= 0 {
                    found = true
                    box.z0 = min(box.z0, z); box.z1 = max(box.z1, z + 1)
                    box.y0 = min(box.y0, y); box.y1 = max(box.y1, y + 1)
                    box.x0 = min(box.x0, first); box.x1 = max(box.x1, last + 1)
                }
            }
        }
        return found ? box : nil
    }

    /// The voxels of `values` inside the box, in (Z, Y, X) order.
    public func crop<T>(_ values: [T], grid: VoxelGrid) -> [T] {
        var out: [T] = []
        out.reserveCapacity(shape.z * shape.y * shape.x)
        for z in z0..<z1 {
            for y in y0..<y1 {
                let start = grid.index(z, y, x0)
                out.append(contentsOf: values[start..<(start + (x1 - x0))])
            }
        }
        return out
    }
}

public enum MaskSurface {
    /// The surface voxels of `mask` on `grid`.
    ///
    /// `outsideGridIsImageBorder` says, per face (z-, z+, y-, y+, x-, x+), whether the grid's edge on that side
    /// is the real image border; when the grid is a crop of a larger image, a face that is not the image
    /// border has, beyond it, voxels that are known to be outside the mask (the crop holds every mask voxel).
    public static func surface(of mask: [Bool], grid: VoxelGrid, definition: SurfaceDefinition,
                               outsideGridIsImageBorder: [Bool] = [true, true, true, true, true, true]) -> [Bool] {
        precondition(mask.count == grid.count)
        if definition == .fullyConnectedBoundaryInsideImage {
            return fullyConnectedBoundary(of: mask, grid: grid, outsideGridIsImageBorder: outsideGridIsImageBorder)
        }
        var result = [Bool](repeating: false, count: grid.count)
        // Whether a missing neighbour beyond each face makes the voxel a surface voxel.
        let borderCounts = definition == .edgeIncludingImageBorder
        let beyond = outsideGridIsImageBorder.map { isImageBorder in isImageBorder ? borderCounts : true }
        let nx = grid.nx, ny = grid.ny, nz = grid.nz
        let strideY = nx, strideZ = nx * ny
        mask.withUnsafeBufferPointer { m in
            result.withUnsafeMutableBufferPointer { r in
                for z in 0..<nz {
                    for y in 0..<ny {
                        let rowStart = grid.index(z, y, 0)
                        for x in 0..<nx {
                            let i = rowStart + x
                            guard m[i] else { continue }
                            let onSurface =
                                (z > 0 ? !m[i - strideZ] : beyond[0]) ||
                                (z < nz - 1 ? !m[i + strideZ] : beyond[1]) ||
                                (y > 0 ? !m[i - strideY] : beyond[2]) ||
                                (y < ny - 1 ? !m[i + strideY] : beyond[3]) ||
                                (x > 0 ? !m[i - 1] : beyond[4]) ||
                                (x < nx - 1 ? !m[i + 1] : beyond[5])
                            if onSurface { r[i] = true }
                        }
                    }
                }
            }
        }
        return result
    }

    /// Voxels of `mask` with a voxel outside the mask among their 26 neighbours: mask AND NOT (mask eroded by the
    /// 3x3x3 cube). The cube erosion is done as three 1-D erosions of width 3 (X, then Y, then Z), which is exact
    /// for a cube. Beyond a face of the grid the erosion sees `true` where that face is the image border (nothing
    /// there, so no boundary) and `false` where the grid is a crop (the voxels there exist and are outside the
    /// mask). Reading that constant instead of the padded voxels' eroded values changes nothing: a padded voxel
    /// beyond two faces is `false` only when both faces are crop edges, and then its in-grid neighbour already
    /// sees the `false` beyond its own face.
    static func fullyConnectedBoundary(of mask: [Bool], grid: VoxelGrid, outsideGridIsImageBorder faces: [Bool]) -> [Bool] {
        var eroded = mask
        let nx = grid.nx, ny = grid.ny, nz = grid.nz
        eroded.withUnsafeMutableBufferPointer { e in
            for row in 0..<(nz * ny) {
                erodeLine(e, start: row * nx, stride: 1, count: nx, beforeStart: faces[4], afterEnd: faces[5])
            }
            for z in 0..<nz {
                for x in 0..<nx {
                    erodeLine(e, start: grid.index(z, 0, x), stride: nx, count: ny, beforeStart: faces[2], afterEnd: faces[3])
                }
            }
            for y in 0..<ny {
                for x in 0..<nx {
                    erodeLine(e, start: grid.index(0, y, x), stride: nx * ny, count: nz, beforeStart: faces[0], afterEnd: faces[1])
                }
            }
        }
        var result = mask
        for i in result.indices where result[i] && eroded[i] { result[i] = false }
        return result
    }

    /// In place: v[i] = v[i-1] && v[i] && v[i+1] along one line, with the given values beyond its two ends.
    @inline(__always)
    private static func erodeLine(_ v: UnsafeMutableBufferPointer<Bool>, start: Int, stride: Int, count n: Int,
                                  beforeStart: Bool, afterEnd: Bool) {
        var previous = beforeStart
        var index = start
        for i in 0..<n {
            let current = v[index]
            let next = i + 1 < n ? v[index + stride] : afterEnd
            v[index] = previous && current && next
            previous = current
            index += stride
        }
    }
}
