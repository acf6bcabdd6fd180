import Foundation

/// Which voxels of a binary mask count as its surface. Both use the 6 face neighbours.
public enum SurfaceDefinition: Sendable, Equatable {
    /// SPEC §7 contour (SimpleITK LabelContour, fully-connected off): a voxel of X with at least one face
    /// neighbour that lies inside the image and outside X. The image border is not a boundary, so a mask that
    /// fills the image has no contour. Used by MeanDistance_mm.
    case contourInsideImage
    /// MONAI `get_mask_edges`: X minus its binary erosion by the 6-neighbour cross with the outside of the image
    /// treated as background, i.e. a voxel of X with a face neighbour outside X or outside the image.
    /// Used by the extra metrics HD95, ASSD and surface Dice, so that they match MONAI's numbers.
    case edgeIncludingImageBorder
}

/// A box of voxels [z0, z1) x [y0, y1) x [x0, x1) inside a grid.
public struct VoxelBox: Sendable, Equatable {
    public var z0: Int, z1: Int, y0: Int, y1: Int, x0: Int, x1: Int

    public var isEmpty: Bool { z1 <= z0 || y1 <= y0 || x1 <= x0 }
    public var shape: (z: Int, y: Int, x: Int) { (z1 - z0, y1 - y0, x1 - x0) }

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
}
