// RandomAffine (torchvision's parameters and matrix, about the image centre) and ElasticDeformation (SPEC §13).
// Both map every output voxel to an input position and sample there, bilinear (trilinear for the elastic field
// of a 3-D image) or nearest, with a constant fill value outside the image.
import Foundation
import IECore

/// cos and sin of an angle in degrees, exact at multiples of 90 degrees (so quarter turns move pixels exactly).
fileprivate func exactCosSin(degrees: Double) -> (Double, Double) {
    let quarter = degrees / 90
    if quarter == quarter.rounded(), abs(quarter) < 1e9 {
        switch ((Int(quarter) % 4) + 4) % 4 {
        case 0: return (1, 0)
        case 1: return (0, 1)
        case 2: return (-1, 0)
        default: return (0, -1)
        }
    }
    let r = degrees * Double.pi / 180
    return (cos(r), sin(r))
}

/// torchvision RandomAffine: angle U(degrees), translation (round(U(-a W, a W)), round(U(-b H, b H))) pixels,
/// scale U(scale), shear x U(shear[0...1]) and y U(shear[2...3]) degrees, about the centre ((W-1)/2, (H-1)/2).
/// A positive angle turns the image clockwise as displayed (row 0 at the top): +90 degrees is numpy.rot90(a, -1).
/// A 3-D image gets the same in-plane transform on every slice.
public struct RandomAffineTransform: ImageTransform {
    public static let transformName = "RandomAffine"
    public var probability: Double
    public var degrees: (Double, Double)
    public var translate: (Double, Double)
    public var scale: (Double, Double)
    public var shearX: (Double, Double)
    public var shearY: (Double, Double)
    public var nearest: Bool
    public var fill: Float

    public init(degrees: (Double, Double) = (0, 0), translate: (Double, Double) = (0, 0), scale: (Double, Double) = (1, 1),
                shearX: (Double, Double) = (0, 0), shearY: (Double, Double) = (0, 0), nearest: Bool = false,
                fill: Float = 0, probability: Double = 1) {
        self.degrees = degrees; self.translate = translate; self.scale = scale
        self.shearX = shearX; self.shearY = shearY; self.nearest = nearest; self.fill = fill; self.probability = probability
    }

    public init(fields: inout TransformFieldReader, probability: Double) throws {
        let degrees = try fields.range("degrees", default: (0, 0), symmetric: true,
                                       expected: "a number >= 0 or a [min, max] pair of degrees")
        let translate = try fields.range("translate", default: (0, 0),
                                         expected: "a [horizontal, vertical] pair of fractions in [0, 1]") { $0 >= 0 && $0 <= 1 }
        let scale = try fields.range("scale", default: (1, 1), expected: "a [min, max] pair of numbers > 0") { $0 > 0 }
        var shearX = (0.0, 0.0), shearY = (0.0, 0.0)
        if let shear = fields.raw("shear") {
            let ok: Bool
            switch shear {
            case .number(let v) where v.isFinite && v >= 0: shearX = (-v, v); ok = true
            case .numbers(let l) where (l.count == 2 || l.count == 4) && l.allSatisfy({ $0.isFinite && abs($0) < 90 })
                    && l[0] <= l[1] && (l.count == 2 || l[2] <= l[3]):
                shearX = (l[0], l[1])
                if l.count == 4 { shearY = (l[2], l[3]) }
                ok = true
            default: ok = false
            }
            if !ok || max(abs(shearX.0), abs(shearX.1)) >= 90 {
                throw fields.bad("shear", shear, expected: "a number in [0, 90) or a list of 2 or 4 degrees (x min, x max"
                                 + "[, y min, y max]) in (-90, 90)")
            }
        }
        let interpolation = try fields.choice("interpolation", default: "bilinear", ["bilinear", "nearest"])
        let fill = try fields.number("fill", default: 0)
        self.init(degrees: degrees ?? (0, 0), translate: translate ?? (0, 0), scale: scale ?? (1, 1), shearX: shearX,
                  shearY: shearY, nearest: interpolation == "nearest", fill: Float(fill), probability: probability)
    }

    /// The drawn parameters: angle and shears in degrees, translation in pixels.
    public struct Draw: Sendable, Equatable {
        public var angle: Double, translateX: Int, translateY: Int, scale: Double, shearX: Double, shearY: Double
        public init(angle: Double = 0, translateX: Int = 0, translateY: Int = 0, scale: Double = 1,
                    shearX: Double = 0, shearY: Double = 0) {
            self.angle = angle; self.translateX = translateX; self.translateY = translateY
            self.scale = scale; self.shearX = shearX; self.shearY = shearY
        }
    }

    /// torchvision's draw order: angle, translation, scale, shear.
    public func draw(height: Int, width: Int, using rng: inout Xoshiro256) -> Draw {
        let angle = rng.uniform(degrees.0, degrees.1)
        let maxX = translate.0 * Double(width), maxY = translate.1 * Double(height)
        let tx = transformRoundHalfToEven(rng.uniform(-maxX, maxX)), ty = transformRoundHalfToEven(rng.uniform(-maxY, maxY))
        let s = rng.uniform(scale.0, scale.1)
        let sx = rng.uniform(shearX.0, shearX.1), sy = rng.uniform(shearY.0, shearY.1)
        return Draw(angle: angle, translateX: tx, translateY: ty, scale: s, shearX: sx, shearY: sy)
    }

    /// The inverse (output offset -> input offset) of the forward map R(angle) S(scale) Shear(sx, sy) about
    /// the centre, row-major 2x2 over (x, y), as torchvision's inverse affine matrix.
    public static func inverseMatrix(_ p: Draw) -> [Double] {
        let cosY = exactCosSin(degrees: p.shearY).0
        let (cosRY, sinRY) = exactCosSin(degrees: p.angle - p.shearY)
        let (cosR, sinR) = exactCosSin(degrees: p.angle)
        let tanX = tan(p.shearX * Double.pi / 180)
        let a = cosRY / cosY, c = sinRY / cosY
        let b = -(a * tanX + sinR), d = cosR - c * tanX
        // Forward [[a, b], [c, d]] * scale has determinant scale^2 (a d - b c) = scale^2, so its inverse is:
        return [d / p.scale, -b / p.scale, -c / p.scale, a / p.scale]
    }

    public func apply(_ image: TransformImage, draw p: Draw) -> TransformImage {
        let m = RandomAffineTransform.inverseMatrix(p)
        let cx = Double(image.width - 1) / 2, cy = Double(image.height - 1) / 2
        return TransformImage.generate(channels: image.channels, depth: image.depth, height: image.height,
                                       width: image.width) { c, z, y, x in
            let u = Double(x) - cx - Double(p.translateX), v = Double(y) - cy - Double(p.translateY)
            let xin = cx + m[0] * u + m[1] * v, yin = cy + m[2] * u + m[3] * v
            return nearest ? image.sampleNearest(c, Double(z), yin, xin, fill: fill)
                           : image.sampleLinear(c, Double(z), yin, xin, fill: fill)
        }
    }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        apply(image, draw: draw(height: image.height, width: image.width, using: &rng))
    }
}

/// Elastic deformation: a displacement per interior point of a coarse grid of `controlPoints` per axis (depth
/// too for a 3-D image), each component U(-magnitude, magnitude) pixels, border points fixed at 0, upsampled
/// to every voxel by linear interpolation (grid corners on image corners); output(p) = input(p + d(p)).
public struct ElasticDeformationTransform: ImageTransform {
    public static let transformName = "ElasticDeformation"
    public var probability: Double
    public var magnitude: Double
    public var controlPoints: Int
    public var fill: Float

    public init(magnitude: Double, controlPoints: Int = 5, fill: Float = 0, probability: Double = 1) {
        self.magnitude = magnitude; self.controlPoints = controlPoints; self.fill = fill; self.probability = probability
    }

    public init(fields: inout TransformFieldReader, probability: Double) throws {
        let magnitude = try fields.number("magnitude", default: 2, expected: "a number of pixels >= 0") { $0 >= 0 }
        let points = try fields.integer("control_points", default: 5, expected: "an integer >= 3") { $0 >= 3 && $0 <= 1000 }
        let fill = try fields.number("fill", default: 0)
        self.init(magnitude: magnitude, controlPoints: points, fill: Float(fill), probability: probability)
    }

    /// The coarse displacement field: channels (dz, dy, dx) on a grid of (gz, gy, gx) points.
    public func coarseField(for image: TransformImage, using rng: inout Xoshiro256) -> TransformImage {
        let gz = image.is2D ? 1 : controlPoints, g = controlPoints
        var field = TransformImage(channels: 3, depth: gz, height: g, width: g)
        for z in 0..<gz { for y in 0..<g { for x in 0..<g {
            let border = y == 0 || y == g - 1 || x == 0 || x == g - 1 || (gz > 1 && (z == 0 || z == gz - 1))
            if border { continue }
            for component in (image.is2D ? 1 : 0)...2 {
                field[component, z, y, x] = Float(rng.uniform(-magnitude, magnitude))
            }
        } } }
        return field
    }

    public func apply(_ image: TransformImage, field: TransformImage) -> TransformImage {
        func coarse(_ p: Int, _ n: Int, _ g: Int) -> Double { n > 1 ? Double(p) * Double(g - 1) / Double(n - 1) : 0 }
        // The displacement of every voxel, (dz, dy, dx) in [z][y][x] order, computed once for all channels.
        var displacement = [Double](repeating: 0, count: 3 * image.voxelsPerChannel)
        var i = 0
        for z in 0..<image.depth { for y in 0..<image.height { for x in 0..<image.width {
            let qz = coarse(z, image.depth, field.depth), qy = coarse(y, image.height, field.height)
            let qx = coarse(x, image.width, field.width)
            for component in 0..<3 {
                displacement[3 * i + component] = Double(field.sampleLinear(component, qz, qy, qx, fill: 0))
            }
            i += 1
        } } }
        return TransformImage.generate(channels: image.channels, depth: image.depth, height: image.height,
                                       width: image.width) { c, z, y, x in
            let k = 3 * ((z * image.height + y) * image.width + x)
            return image.sampleLinear(c, Double(z) + displacement[k], Double(y) + displacement[k + 1],
                                      Double(x) + displacement[k + 2], fill: fill)
        }
    }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        apply(image, field: coarseField(for: image, using: &rng))
    }
}
