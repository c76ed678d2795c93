/* digitnet's drawing pipeline in the browser: strokes or pixels -> the MNIST-style 28x28
 * input -> every model's ten probabilities, on plain typed arrays with no library.
 *
 * Each step mirrors its Python original operation by operation, in the same precision
 * (Math.fround where NumPy or Pillow works in float32), so both sides agree:
 *   rasterizeStrokes  digitnet/strokes.py      rasterize_strokes
 *   greyFromRGBA      digitnet/preprocess.py   to_float_array + _grey
 *   canvasToMnist     digitnet/preprocess.py   image_to_ink, crop_to_ink, fit_in_box
 *                                              (Pillow's LANCZOS resize), centre_by_mass
 *   parseWebModel     digitnet/export.py       the web model file (safetensors)
 *   runModel          digitnet/export.py       run_web
 * tests/test_pad_browser.py checks the agreement in Chromium.
 *
 * Loaded as a classic script; defines globalThis.digitnetPipeline.
 */
(function (root) {
  "use strict";

  const f32 = Math.fround;
  // digitnet/preprocess.py's constants; tests/test_pad_browser.py checks they still match.
  const CONSTANTS = Object.freeze({
    IMAGE_SIZE: 28,
    BOX_SIZE: 20,
    CENTRE_OF_MASS: 14,
    MIN_CONTRAST: 0.12,
    NOISE_FLOOR: 0.08,
    MIN_INK_PIXELS: 4,
  });
  const IMAGE_SIZE = CONSTANTS.IMAGE_SIZE;
  const NOISE_FLOOR_F32 = f32(CONSTANTS.NOISE_FLOOR); // NumPy compares float32 ink in float32
  const GREY_WEIGHTS = [f32(0.299), f32(0.587), f32(0.114)];

  /* ---------------------------------------------------------------- strokes -> ink */

  /** Ink from one stroke segment, max-ed into `ink` (size x size float32, 1 = ink). */
  function drawSegment(ink, size, ax, ay, bx, by, radius) {
    const reach = radius + 1.0;
    const left = Math.max(0, Math.floor(Math.min(ax, bx) - reach));
    const right = Math.min(size - 1, Math.ceil(Math.max(ax, bx) + reach));
    const top = Math.max(0, Math.floor(Math.min(ay, by) - reach));
    const bottom = Math.min(size - 1, Math.ceil(Math.max(ay, by) + reach));
    const dx = bx - ax;
    const dy = by - ay;
    const length2 = dx * dx + dy * dy;
    for (let row = top; row <= bottom; row++) {
      const py = row + 0.5;
      for (let col = left; col <= right; col++) {
        const px = col + 0.5;
        let t = 0;
        if (length2 > 0) {
          t = ((px - ax) * dx + (py - ay) * dy) / length2;
          t = t < 0 ? 0 : t > 1 ? 1 : t;
        }
        const gx = px - (ax + t * dx);
        const gy = py - (ay + t * dy);
        let coverage = radius + 0.5 - Math.sqrt(gx * gx + gy * gy);
        coverage = coverage < 0 ? 0 : coverage > 1 ? 1 : coverage;
        const index = row * size + col;
        const value = f32(coverage);
        if (value > ink[index]) ink[index] = value;
      }
    }
  }

  /** Ink of the points from `from` on of one stroke; a lone point is a dot. */
  function drawStroke(ink, size, stroke, radius, from = 0) {
    if (stroke.length === 1 && from === 0) {
      drawSegment(ink, size, stroke[0][0], stroke[0][1], stroke[0][0], stroke[0][1], radius);
    }
    for (let i = Math.max(1, from); i < stroke.length; i++) {
      const a = stroke[i - 1];
      const b = stroke[i];
      drawSegment(ink, size, a[0], a[1], b[0], b[1], radius);
    }
  }

  /** Strokes ([[x, y], ...] in pad units) -> ink (size * size Float32Array). */
  function rasterizeStrokes(strokes, size, radius) {
    const ink = new Float32Array(size * size);
    for (const stroke of strokes) drawStroke(ink, size, stroke, radius);
    return ink;
  }

  /* ---------------------------------------------------------------- pixels -> grey */

  /** RGBA bytes (as a canvas gives them) -> grey and, if any pixel is see-through, alpha. */
  function greyFromRGBA(rgba, width, height) {
    const count = width * height;
    const grey = new Float32Array(count);
    let alpha = new Float32Array(count);
    let minAlpha = 1;
    for (let i = 0; i < count; i++) {
      const r = f32(rgba[4 * i] / 255);
      const g = f32(rgba[4 * i + 1] / 255);
      const b = f32(rgba[4 * i + 2] / 255);
      grey[i] = f32(f32(f32(r * GREY_WEIGHTS[0]) + f32(g * GREY_WEIGHTS[1])) + f32(b * GREY_WEIGHTS[2]));
      alpha[i] = f32(rgba[4 * i + 3] / 255);
      if (alpha[i] < minAlpha) minAlpha = alpha[i];
    }
    if (!(minAlpha < 0.99)) alpha = null; // opaque: what an RGB image is in Python
    return { grey, alpha };
  }

  /** An image file (any URL, data: too) -> {rgba, width, height}: its pixels, decoded. */
  async function loadImagePixels(url) {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(image, 0, 0);
    const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
    return { rgba, width: canvas.width, height: canvas.height, image };
  }

  /* ---------------------------------------------------------------- grey -> ink */

  function sortedCopy(values) {
    return Float32Array.from(values).sort();
  }

  /** np.percentile(values, q), linear interpolation (values sorted ascending). */
  function percentile(sorted, q) {
    const position = (q / 100) * (sorted.length - 1);
    const below = Math.floor(position);
    const above = Math.min(below + 1, sorted.length - 1);
    const fraction = position - below;
    return sorted[below] + (sorted[above] - sorted[below]) * fraction;
  }

  /** preprocess._border_median: the median of a thin frame (corners counted twice). */
  function borderMedian(grey, width, height) {
    const band = Math.max(1, Math.floor(Math.min(height, width) / 50));
    const border = [];
    for (let row = 0; row < band; row++) {
      for (let col = 0; col < width; col++) border.push(grey[row * width + col]);
    }
    for (let row = height - band; row < height; row++) {
      for (let col = 0; col < width; col++) border.push(grey[row * width + col]);
    }
    for (let row = 0; row < height; row++) {
      for (let col = 0; col < band; col++) border.push(grey[row * width + col]);
    }
    for (let row = 0; row < height; row++) {
      for (let col = width - band; col < width; col++) border.push(grey[row * width + col]);
    }
    const sorted = sortedCopy(border);
    const middle = sorted.length >> 1;
    if (sorted.length % 2) return sorted[middle];
    return f32(f32(sorted[middle - 1] + sorted[middle]) / 2);
  }

  /** preprocess.image_to_ink: -> {ink, blank}; ink normalised so its peak is 1. */
  function imageToInk(grey, alpha, width, height) {
    const count = width * height;
    let ink = null;
    if (alpha) {
      const opaque = [];
      for (let i = 0; i < count; i++) if (alpha[i] > 0.5) opaque.push(grey[i]);
      let oneColour = opaque.length === 0;
      if (!oneColour) {
        const sorted = sortedCopy(opaque);
        oneColour = percentile(sorted, 99) - percentile(sorted, 1) < 0.25;
      }
      if (oneColour) {
        ink = Float32Array.from(alpha); // transparent background: the drawing is the alpha
      } else {
        const flat = new Float32Array(count); // several colours: flatten onto white
        for (let i = 0; i < count; i++) flat[i] = f32(f32(grey[i] * alpha[i]) + f32(1 - alpha[i]));
        grey = flat;
      }
    }
    if (ink === null) {
      const background = borderMedian(grey, width, height);
      ink = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        const value = background >= 0.5 ? f32(background - grey[i]) : f32(grey[i] - background);
        ink[i] = value > 0 ? value : 0;
      }
    }
    let contrast = 0;
    for (let i = 0; i < count; i++) if (ink[i] > contrast) contrast = ink[i];
    if (contrast < CONSTANTS.MIN_CONTRAST) return { ink: new Float32Array(count), blank: true };
    let inked = 0;
    for (let i = 0; i < count; i++) {
      let value = f32(ink[i] / contrast);
      if (value < NOISE_FLOOR_F32) value = 0;
      ink[i] = value;
      if (value > 0.5) inked += 1;
    }
    return { ink, blank: inked < CONSTANTS.MIN_INK_PIXELS };
  }

  /* ---------------------------------------------------------------- ink -> 28x28 */

  /** Python's round(): halves go to the even neighbour. */
  function roundHalfEven(x) {
    const floor = Math.floor(x);
    const fraction = x - floor;
    if (fraction > 0.5) return floor + 1;
    if (fraction < 0.5) return floor;
    return floor % 2 === 0 ? floor : floor + 1;
  }

  function cropToInk(ink, width, height) {
    let top = height;
    let bottom = -1;
    let left = width;
    let right = -1;
    for (let row = 0; row < height; row++) {
      for (let col = 0; col < width; col++) {
        if (ink[row * width + col] !== 0) {
          if (row < top) top = row;
          if (row > bottom) bottom = row;
          if (col < left) left = col;
          if (col > right) right = col;
        }
      }
    }
    if (bottom < 0) return { data: new Float32Array(0), width: 0, height: 0 };
    const cropWidth = right - left + 1;
    const cropHeight = bottom - top + 1;
    const data = new Float32Array(cropWidth * cropHeight);
    for (let row = 0; row < cropHeight; row++) {
      data.set(ink.subarray((top + row) * width + left, (top + row) * width + right + 1), row * cropWidth);
    }
    return { data, width: cropWidth, height: cropHeight };
  }

  function sinc(x) {
    if (x === 0) return 1;
    x = x * Math.PI;
    return Math.sin(x) / x;
  }

  function lanczos(x) {
    return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  }

  /** Pillow's precompute_coeffs (Resample.c) for the LANCZOS filter, support 3. */
  function resampleCoefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterScale = scale < 1 ? 1 : scale;
    const support = 3 * filterScale;
    const kernelSize = Math.ceil(support) * 2 + 1;
    const weights = new Float64Array(outSize * kernelSize);
    const bounds = new Int32Array(outSize * 2);
    for (let out = 0; out < outSize; out++) {
      const centre = (out + 0.5) * scale;
      const inverse = 1 / filterScale;
      let low = Math.trunc(centre - support + 0.5);
      if (low < 0) low = 0;
      let high = Math.trunc(centre + support + 0.5);
      if (high > inSize) high = inSize;
      high -= low;
      let total = 0;
      for (let x = 0; x < high; x++) {
        const w = lanczos((x + low - centre + 0.5) * inverse);
        weights[out * kernelSize + x] = w;
        total += w;
      }
      if (total !== 0) {
        for (let x = 0; x < high; x++) weights[out * kernelSize + x] /= total;
      }
      bounds[2 * out] = low;
      bounds[2 * out + 1] = high;
    }
    return { weights, bounds, kernelSize };
  }

  /** Pillow's Image.resize(size, LANCZOS) on a mode "F" image: two float32 passes. */
  function resizeLanczos(source, inWidth, inHeight, outWidth, outHeight) {
    if (inWidth === outWidth && inHeight === outHeight) return Float32Array.from(source);
    const vertical = resampleCoefficients(inHeight, outHeight);
    const firstRow = vertical.bounds[0];
    const lastRow = vertical.bounds[2 * outHeight - 2] + vertical.bounds[2 * outHeight - 1];
    let image = source;
    let width = inWidth;
    if (outWidth !== inWidth) {
      for (let i = 0; i < outHeight; i++) vertical.bounds[2 * i] -= firstRow;
      const horizontal = resampleCoefficients(inWidth, outWidth);
      const rows = lastRow - firstRow;
      const temp = new Float32Array(outWidth * rows);
      for (let y = 0; y < rows; y++) {
        const rowStart = (y + firstRow) * inWidth;
        for (let x = 0; x < outWidth; x++) {
          const low = horizontal.bounds[2 * x];
          const count = horizontal.bounds[2 * x + 1];
          const k = x * horizontal.kernelSize;
          let sum = 0;
          for (let i = 0; i < count; i++) sum += source[rowStart + low + i] * horizontal.weights[k + i];
          temp[y * outWidth + x] = sum;
        }
      }
      image = temp;
      width = outWidth;
    }
    if (outHeight === inHeight) return image;
    const out = new Float32Array(width * outHeight);
    for (let y = 0; y < outHeight; y++) {
      const low = vertical.bounds[2 * y];
      const count = vertical.bounds[2 * y + 1];
      const k = y * vertical.kernelSize;
      for (let x = 0; x < width; x++) {
        let sum = 0;
        for (let i = 0; i < count; i++) sum += image[(low + i) * width + x] * vertical.weights[k + i];
        out[y * width + x] = sum;
      }
    }
    return out;
  }

  /** preprocess.fit_in_box: longer side to BOX_SIZE, anti-aliased, peak rescaled to 1. */
  function fitInBox(cropped) {
    const scale = CONSTANTS.BOX_SIZE / Math.max(cropped.height, cropped.width);
    const width = Math.max(1, roundHalfEven(cropped.width * scale));
    const height = Math.max(1, roundHalfEven(cropped.height * scale));
    const data = resizeLanczos(cropped.data, cropped.width, cropped.height, width, height);
    let peak = 0;
    for (let i = 0; i < data.length; i++) {
      if (data[i] < 0) data[i] = 0;
      if (data[i] > peak) peak = data[i];
    }
    if (peak > 0) {
      for (let i = 0; i < data.length; i++) data[i] = Math.min(1, f32(data[i] / peak));
    }
    return { data, width, height };
  }

  /** preprocess.centre_by_mass: whole-pixel shift of the centre of mass to (14, 14). */
  function centreByMass(boxed) {
    const { data, width, height } = boxed;
    let total = 0;
    let rowMoment = 0;
    let colMoment = 0;
    for (let row = 0; row < height; row++) {
      for (let col = 0; col < width; col++) {
        const value = data[row * width + col];
        total += value;
        rowMoment += row * value;
        colMoment += col * value;
      }
    }
    // Snapped to a millionth, as preprocess.snap does: a centre on a half pixel is then the
    // same tie on both sides, however the sums' last bits came out.
    const snap = (value) => Math.floor(value * 1e6 + 0.5) / 1e6;
    const massRow = snap(total > 0 ? rowMoment / total : (height - 1) / 2);
    const massCol = snap(total > 0 ? colMoment / total : (width - 1) / 2);
    const clamp = (value, high) => Math.min(Math.max(value, 0), high);
    const top = clamp(roundHalfEven(CONSTANTS.CENTRE_OF_MASS - massRow), IMAGE_SIZE - height);
    const left = clamp(roundHalfEven(CONSTANTS.CENTRE_OF_MASS - massCol), IMAGE_SIZE - width);
    const frame = new Float32Array(IMAGE_SIZE * IMAGE_SIZE);
    for (let row = 0; row < height; row++) {
      frame.set(data.subarray(row * width, (row + 1) * width), (top + row) * IMAGE_SIZE + left);
    }
    return frame;
  }

  /**
   * preprocess.canvas_to_mnist from grey (and alpha, or null) pixels.
   * Returns {image: Float32Array(784), blank}: the model's input, zeros when blank.
   */
  function canvasToMnist(grey, alpha, width, height) {
    const { ink, blank } = imageToInk(grey, alpha, width, height);
    if (blank) return { image: new Float32Array(IMAGE_SIZE * IMAGE_SIZE), blank: true };
    return { image: centreByMass(fitInBox(cropToInk(ink, width, height))), blank: false };
  }

  /** The pad's ink (light on dark, as rasterizeStrokes makes it) -> the model's input. */
  function inkToMnist(ink, size) {
    // The Python side passes the same ink map to canvas_to_mnist as a grey image.
    return canvasToMnist(ink, null, size, size);
  }

  /* ---------------------------------------------------------------- models */

  /** A web model file (digitnet/export.py: safetensors) -> {ops, tensors, metadata}. */
  function parseWebModel(buffer) {
    const view = new DataView(buffer);
    const headerLength = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
    if (!(headerLength > 0 && 8 + headerLength <= buffer.byteLength)) {
      throw new Error("not a web model file (bad header length)");
    }
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, headerLength)));
    const metadata = header.__metadata__ || {};
    if (metadata.format !== "digitnet-web") throw new Error("not a digitnet web model");
    const tensors = {};
    for (const [name, info] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      if (info.dtype !== "F32") throw new Error(`tensor ${name} is ${info.dtype}, not F32`);
      const start = 8 + headerLength + info.data_offsets[0];
      const end = 8 + headerLength + info.data_offsets[1];
      if (end > buffer.byteLength) throw new Error(`tensor ${name} runs past the end of the file`);
      // Float32Array views need 4-byte alignment; copy the rare unaligned tensor.
      tensors[name] =
        start % 4 === 0
          ? new Float32Array(buffer, start, (end - start) / 4)
          : new Float32Array(buffer.slice(start, end));
      tensors[name].shape = info.shape;
    }
    return { ops: JSON.parse(metadata.ops), tensors, metadata, calibration: calibrationOf(metadata) };
  }

  /** The model's calibration (digitnet.calibration): its temperature, and the top probability
   * under which a drawing is "not a digit". A model exported without them refuses nothing. */
  function calibrationOf(metadata) {
    const temperature = Number(metadata.temperature ?? 1);
    const rejectBelow = Number(metadata.reject_below ?? 0);
    const valid = Number.isFinite(temperature) && temperature > 0 && Number.isFinite(rejectBelow);
    return valid ? { temperature, rejectBelow } : { temperature: 1, rejectBelow: 0 };
  }

  function dense(x, weight, bias) {
    const outputs = bias.length;
    const inputs = x.length;
    if (weight.length !== outputs * inputs) throw new Error("dense: input size does not match");
    const out = new Float32Array(outputs);
    for (let o = 0; o < outputs; o++) {
      let sum = 0;
      const row = o * inputs;
      for (let i = 0; i < inputs; i++) sum += weight[row + i] * x[i];
      out[o] = sum + bias[o];
    }
    return out;
  }

  /** The input planes with `padding` zeros around each, so the kernel loops need no checks. */
  function padPlanes(x, padding) {
    const height = x.height + 2 * padding;
    const width = x.width + 2 * padding;
    const padded = new Float32Array(x.channels * height * width);
    for (let c = 0; c < x.channels; c++) {
      for (let row = 0; row < x.height; row++) {
        const from = (c * x.height + row) * x.width;
        padded.set(x.data.subarray(from, from + x.width), (c * height + row + padding) * width + padding);
      }
    }
    return { data: padded, height, width };
  }

  function conv2d(x, weight, bias, padding) {
    const [outChannels, inChannels, kernel] = weight.shape;
    if (inChannels !== x.channels) throw new Error("conv2d: channel count does not match");
    const input = padPlanes(x, padding);
    const source = input.data;
    const inWidth = input.width;
    const inPlane = input.height * inWidth;
    const height = input.height - kernel + 1;
    const width = inWidth - kernel + 1;
    const plane = height * width;
    const out = new Float32Array(outChannels * plane);
    const sum = new Float64Array(plane);
    for (let o = 0; o < outChannels; o++) {
      sum.fill(bias[o]);
      for (let c = 0; c < inChannels; c++) {
        const w = (o * inChannels + c) * kernel * kernel;
        const base = c * inPlane;
        if (kernel === 3) {
          // The 3x3 case, unrolled: nine products per output pixel in one pass.
          const w0 = weight[w], w1 = weight[w + 1], w2 = weight[w + 2];
          const w3 = weight[w + 3], w4 = weight[w + 4], w5 = weight[w + 5];
          const w6 = weight[w + 6], w7 = weight[w + 7], w8 = weight[w + 8];
          for (let row = 0; row < height; row++) {
            const r0 = base + row * inWidth;
            const r1 = r0 + inWidth;
            const r2 = r1 + inWidth;
            const to = row * width;
            for (let col = 0; col < width; col++) {
              sum[to + col] +=
                w0 * source[r0 + col] + w1 * source[r0 + col + 1] + w2 * source[r0 + col + 2] +
                w3 * source[r1 + col] + w4 * source[r1 + col + 1] + w5 * source[r1 + col + 2] +
                w6 * source[r2 + col] + w7 * source[r2 + col + 1] + w8 * source[r2 + col + 2];
            }
          }
        } else {
          for (let i = 0; i < kernel; i++) {
            for (let j = 0; j < kernel; j++) {
              const k = weight[w + i * kernel + j];
              for (let row = 0; row < height; row++) {
                const from = base + (row + i) * inWidth + j;
                const to = row * width;
                for (let col = 0; col < width; col++) sum[to + col] += k * source[from + col];
              }
            }
          }
        }
      }
      out.set(sum, o * plane);
    }
    return { data: out, channels: outChannels, height, width };
  }

  function maxPool(x, size) {
    const height = Math.floor(x.height / size);
    const width = Math.floor(x.width / size);
    const out = new Float32Array(x.channels * height * width);
    for (let c = 0; c < x.channels; c++) {
      for (let row = 0; row < height; row++) {
        for (let col = 0; col < width; col++) {
          let best = -Infinity;
          for (let i = 0; i < size; i++) {
            for (let j = 0; j < size; j++) {
              const value = x.data[(c * x.height + row * size + i) * x.width + col * size + j];
              if (value > best) best = value;
            }
          }
          out[(c * height + row) * width + col] = best;
        }
      }
    }
    return { data: out, channels: x.channels, height, width };
  }

  function relu(data) {
    for (let i = 0; i < data.length; i++) if (data[i] < 0) data[i] = 0;
  }

  /** Logits for one input (784 values in [0, 1]), running the model's ops in order. */
  function runModel(model, input) {
    let x = { data: Float32Array.from(input), channels: 1, height: IMAGE_SIZE, width: IMAGE_SIZE };
    for (const op of model.ops) {
      if (op.op === "dense") {
        x = { data: dense(x.data, model.tensors[op.weight], model.tensors[op.bias]), channels: 0 };
      } else if (op.op === "conv2d") {
        x = conv2d(x, model.tensors[op.weight], model.tensors[op.bias], op.padding);
      } else if (op.op === "maxpool2d") {
        x = maxPool(x, op.size);
      } else if (op.op === "relu") {
        relu(x.data);
      } else if (op.op !== "flatten") {
        throw new Error(`unknown operation ${op.op}`);
      }
      if (op.relu) relu(x.data);
    }
    return x.data;
  }

  /** Probabilities from logits; a temperature above 1 softens them, below 1 sharpens. */
  function softmax(logits, temperature = 1) {
    let peak = -Infinity;
    for (const value of logits) if (value > peak) peak = value;
    const exps = Array.from(logits, (value) => Math.exp((value - peak) / temperature));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((value) => value / total);
  }

  /** Fetch and parse a web model; the browser's HTTP cache keeps the file. */
  async function loadModel(url) {
    const response = await fetch(url, { cache: "force-cache" });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return parseWebModel(await response.arrayBuffer());
  }

  /* In a Web Worker (pad.js starts one per heavy model): take the model (its file's bytes, or
   * a URL to load), then answer each input with the logits (and each of its parts', if any). */
  function serveModelInWorker() {
    let model = null;
    root.onmessage = async (message) => {
      const request = message.data;
      try {
        if (request.type === "model") {
          model = parseWebModel(request.buffer);
          root.postMessage({ type: "loaded" });
        } else if (request.type === "load") {
          model = await loadModel(request.url);
          root.postMessage({ type: "loaded" });
        } else if (request.type === "run") {
          // parts: each digit of a number, answered with the drawing (pad.js's numbers).
          const logits = runModel(model, request.input);
          const partLogits = (request.parts ?? []).map((part) => runModel(model, part));
          root.postMessage({ type: "result", version: request.version, logits, partLogits });
        }
      } catch (error) {
        root.postMessage({ type: "error", message: String((error && error.message) || error) });
      }
    };
  }

  if (typeof WorkerGlobalScope !== "undefined" && root instanceof WorkerGlobalScope) {
    serveModelInWorker();
  }


  /* ---------------------------------------------------------------- numbers: strokes -> digits
   * digitnet/numbers.py's split_digits, strokes_to_input and part_input, step by step in the
   * same float64 arithmetic, so both sides find the same digits in the same places and draw
   * the same 28x28 inputs (tests/test_numbers_browser.py checks it). */

  // digitnet/strokes.py's and digitnet/numbers.py's constants; the tests check they match.
  const NUMBER_CONSTANTS = Object.freeze({
    PAD_SIZE: 280,
    BRUSH_RADIUS: 10.0,
    BRUSH_PER_EXTENT: 10.0 / (0.3 * 280),
    MIN_BRUSH_RADIUS: 1.0,
    MAX_DIGITS: 12,
    MAX_MARKS: 48,
    JOIN_DISTANCE: 3.0,
    OVERLAP_SHARE: 0.5,
    NARROW_FLOOR: 0.3,
    NEAR_ROWS: 0.5,
    SPECK_SHARE: 0.2,
    PARTITION_WIDTH: 0.3,
    PART_HEIGHT: 0.6,
    UNSURE_WIDTH: 1.2,
    CUT_WIDTH: 1.4,
    THIN_SHARE: 0.3,
    CUT_MARGIN: 0.3,
    MAX_CUT_DEPTH: 3,
    MIN_CUT_HEIGHT: 5.0,
    CUT_INK: 0.5,
  });
  const N = NUMBER_CONSTANTS;

  /** strokes.ink_extent: the longer side of the strokes' box, each stroke's box cut to the pad. */
  function inkExtent(strokes, size = N.PAD_SIZE) {
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (const stroke of strokes) {
      const box = strokeBox(stroke);
      const sx0 = Math.max(box[0], 0);
      const sy0 = Math.max(box[1], 0);
      const sx1 = Math.min(box[2], size);
      const sy1 = Math.min(box[3], size);
      if (sx0 <= sx1 && sy0 <= sy1) {
        x0 = Math.min(x0, sx0);
        y0 = Math.min(y0, sy0);
        x1 = Math.max(x1, sx1);
        y1 = Math.max(y1, sy1);
      }
    }
    return x0 <= x1 ? Math.max(x1 - x0, y1 - y0) : 0;
  }

  /** strokes.digit_brush_radius: the brush for one digit's model input, scaled to its size. */
  function digitBrushRadius(strokes, size = N.PAD_SIZE) {
    return Math.min(N.BRUSH_RADIUS, Math.max(N.MIN_BRUSH_RADIUS, N.BRUSH_PER_EXTENT * inkExtent(strokes, size)));
  }

  /** numbers.strokes_to_input: one digit's strokes -> {image, blank}, with its own brush. */
  function strokesToMnist(strokes) {
    const ink = rasterizeStrokes(strokes, N.PAD_SIZE, digitBrushRadius(strokes));
    return inkToMnist(ink, N.PAD_SIZE);
  }

  /** numbers.part_input: one digit of splitDigits -> {image, blank}. */
  function partToMnist(part) {
    return strokesToMnist(part.strokes);
  }

  function strokeBox(stroke) {
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (const [x, y] of stroke) {
      if (x < x0) x0 = x;
      if (y < y0) y0 = y;
      if (x > x1) x1 = x;
      if (y > y1) y1 = y;
    }
    return [x0, y0, x1, y1];
  }

  function unionBox(a, b) {
    return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
  }

  function unionAll(boxes) {
    let box = boxes[0];
    for (let i = 1; i < boxes.length; i++) box = unionBox(box, boxes[i]);
    return box;
  }

  function segmentsOf(stroke) {
    if (stroke.length === 1) return [[stroke[0][0], stroke[0][1], stroke[0][0], stroke[0][1]]];
    const segments = [];
    for (let i = 1; i < stroke.length; i++) {
      segments.push([stroke[i - 1][0], stroke[i - 1][1], stroke[i][0], stroke[i][1]]);
    }
    return segments;
  }

  function pointsNearSegments(points, segments, limit) {
    const limit2 = limit * limit;
    for (const [ax, ay, bx, by] of segments) {
      const dx = bx - ax;
      const dy = by - ay;
      const length2 = dx * dx + dy * dy;
      for (const [px, py] of points) {
        let t = 0;
        if (length2 > 0) {
          t = ((px - ax) * dx + (py - ay) * dy) / length2;
          t = t < 0 ? 0 : t > 1 ? 1 : t;
        }
        const gx = px - (ax + t * dx);
        const gy = py - (ay + t * dy);
        if (gx * gx + gy * gy <= limit2) return true;
      }
    }
    return false;
  }

  function segmentsCross(first, second) {
    for (const [ax, ay, bx, by] of first) {
      for (const [cx, cy, dx, dy] of second) {
        const o1 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
        const o2 = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax);
        const o3 = (dx - cx) * (ay - cy) - (dy - cy) * (ax - cx);
        const o4 = (dx - cx) * (by - cy) - (dy - cy) * (bx - cx);
        if (o1 * o2 < 0 && o3 * o4 < 0) return true;
      }
    }
    return false;
  }

  /** numbers.strokes_touch: whether two strokes' centre lines come within `limit`. */
  function strokesTouch(first, second, limit = N.JOIN_DISTANCE) {
    const a = strokeBox(first);
    const b = strokeBox(second);
    if (a[0] - limit > b[2] || b[0] - limit > a[2] || a[1] - limit > b[3] || b[1] - limit > a[3]) {
      return false;
    }
    const firstSegments = segmentsOf(first);
    const secondSegments = segmentsOf(second);
    return (
      pointsNearSegments(first, secondSegments, limit) ||
      pointsNearSegments(second, firstSegments, limit) ||
      segmentsCross(firstSegments, secondSegments)
    );
  }

  function onThePad(stroke) {
    const reach = N.BRUSH_RADIUS + 1.0;
    const [x0, y0, x1, y1] = strokeBox(stroke);
    return x1 >= -reach && y1 >= -reach && x0 <= N.PAD_SIZE + reach && y0 <= N.PAD_SIZE + reach;
  }

  /* Marks: ink that is (so far) one digit, {box, members} with members sorted. */

  function mergedMarks(a, b) {
    return { box: unionBox(a.box, b.box), members: a.members.concat(b.members).sort((p, q) => p - q) };
  }

  function overlapShare(a, b) {
    const overlap = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
    const narrower = Math.max(Math.min(a[2] - a[0], b[2] - b[0]), N.NARROW_FLOOR * Math.min(a[3] - a[1], b[3] - b[1]));
    if (narrower > 0) return overlap / narrower;
    return overlap >= 0 ? Infinity : -Infinity;
  }

  function overlappingMarks(a, b) {
    const gap = Math.max(a.box[1], b.box[1]) - Math.min(a.box[3], b.box[3]);
    const tallest = Math.max(a.box[3] - a.box[1], b.box[3] - b.box[1]);
    return overlapShare(a.box, b.box) >= N.OVERLAP_SHARE && gap <= N.NEAR_ROWS * tallest;
  }

  function piecesOfInk(strokes, indices) {
    const parent = new Map(indices.map((index) => [index, index]));
    const root = (index) => {
      while (parent.get(index) !== index) index = parent.get(index);
      return index;
    };
    for (let p = 0; p < indices.length; p++) {
      for (let q = p + 1; q < indices.length; q++) {
        const i = indices[p];
        const j = indices[q];
        const ri = root(i);
        const rj = root(j);
        if (ri !== rj && strokesTouch(strokes[i], strokes[j])) parent.set(Math.max(ri, rj), Math.min(ri, rj));
      }
    }
    const groups = new Map();
    for (const index of indices) {
      const r = root(index);
      if (!groups.has(r)) groups.set(r, []);
      groups.get(r).push(index);
    }
    return Array.from(groups.values())
      .sort((a, b) => a[0] - b[0])
      .map((members) => ({ box: unionAll(members.map((i) => strokeBox(strokes[i]))), members }));
  }

  function mergeOverlapping(marks) {
    marks = marks.slice();
    let merged = true;
    while (merged) {
      merged = false;
      for (let i = 0; i < marks.length && !merged; i++) {
        for (let j = i + 1; j < marks.length; j++) {
          if (overlappingMarks(marks[i], marks[j])) {
            marks[i] = mergedMarks(marks[i], marks[j]);
            marks.splice(j, 1);
            merged = true;
            break;
          }
        }
      }
    }
    return marks;
  }

  function mergeSpecks(marks) {
    let tallest = 0;
    for (const mark of marks) tallest = Math.max(tallest, mark.box[3] - mark.box[1]);
    const size = (m) => Math.max(m.box[2] - m.box[0], m.box[3] - m.box[1]);
    const specks = marks.map((m) => size(m) < N.SPECK_SHARE * tallest);
    const kept = marks.filter((_, k) => !specks[k]);
    marks.forEach((mark, k) => {
      if (!specks[k]) return;
      let nearest = 0;
      let nearestGap = Infinity;
      kept.forEach((other, n) => {
        const gap = Math.max(0, Math.max(mark.box[0], other.box[0]) - Math.min(mark.box[2], other.box[2]));
        if (gap < nearestGap) {
          nearest = n;
          nearestGap = gap;
        }
      });
      kept[nearest] = mergedMarks(kept[nearest], mark);
    });
    return kept;
  }

  function leftToRight(marks) {
    const middle = (m) => (m.box[0] + m.box[2]) / 2;
    return marks.slice().sort((a, b) => middle(a) - middle(b) || a.members[0] - b.members[0]);
  }

  function tooMany(count) {
    return new Error(`${count} digits is too many for one number; draw at most ${N.MAX_DIGITS} digits`);
  }

  /** numbers._clip_stroke: the parts of a stroke on one side of x = cut (on it: both). */
  function clipStroke(stroke, cut, left) {
    const pieces = [];
    let current = [];
    let previous = null;
    for (const [x, y] of stroke) {
      const inside = left ? x <= cut : x >= cut;
      if (previous !== null) {
        const [px, py, wasInside] = previous;
        if (wasInside !== inside) {
          const t = (cut - px) / (x - px);
          const crossing = [cut, py + t * (y - py)];
          if (wasInside) {
            current.push(crossing);
            pieces.push(current);
            current = [];
          } else {
            current = [crossing];
          }
        }
      }
      if (inside) current.push([x, y]);
      previous = [x, y, inside];
    }
    if (current.length) pieces.push(current);
    return pieces;
  }

  /** numbers._crossing_groups: pieces whose centre lines cross, transitively, grouped. */
  function crossingGroups(pieces) {
    const segments = pieces.map((piece) => segmentsOf(piece.points));
    let group = pieces.map((_, k) => k);
    for (let i = 0; i < pieces.length; i++) {
      for (let j = i + 1; j < pieces.length; j++) {
        if (group[i] !== group[j] && segmentsCross(segments[i], segments[j])) {
          const old = Math.max(group[i], group[j]);
          const merged = Math.min(group[i], group[j]);
          group = group.map((g) => (g === old ? merged : g));
        }
      }
    }
    const ids = Array.from(new Set(group)).sort((a, b) => a - b);
    return ids.map((id) => pieces.filter((_, k) => group[k] === id));
  }

  /** numbers._partition: split between strokes where touching digits part cleanly, or null. */
  function partition(pieces, height) {
    const groups = crossingGroups(pieces);
    if (groups.length < 2) return null;
    const boxes = groups.map((group) => unionAll(group.map((piece) => strokeBox(piece.points))));
    const middle = (k) => (boxes[k][0] + boxes[k][2]) / 2;
    const order = groups.map((_, k) => k).sort((a, b) => middle(a) - middle(b) || a - b);
    let best = null;
    let bestShare = Infinity;
    for (let split = 1; split < order.length; split++) {
      const leftBoxes = order.slice(0, split).map((k) => boxes[k]);
      const rightBoxes = order.slice(split).map((k) => boxes[k]);
      const left = unionAll(leftBoxes);
      const right = unionAll(rightBoxes);
      if (
        !(
          leftBoxes.every((box) => box[0] < right[0]) &&
          rightBoxes.every((box) => box[2] > left[2]) &&
          left[3] - left[1] >= N.PART_HEIGHT * height &&
          right[3] - right[1] >= N.PART_HEIGHT * height
        )
      ) {
        continue;
      }
      const share = overlapShare(left, right);
      if (share < bestShare) {
        best = split;
        bestShare = share;
      }
    }
    if (best === null) return null;
    return [order.slice(0, best), order.slice(best)].map((side) => side.flatMap((k) => groups[k]));
  }

  /**
   * numbers.cut_column: the column of `columns` in one piece's ink (size x size, float32)
   * where it may be cut: crossed once at most, by ink under THIN_SHARE of the inked rows,
   * with ink at least PART_HEIGHT of them tall on each side; the least ink of those,
   * nearest `middle` on a tie; null if none.
   */
  function cutColumn(ink, size, columns, middle) {
    const tops = new Int32Array(size).fill(size);
    const bottoms = new Int32Array(size).fill(-1);
    const runs = new Int32Array(size);
    const counts = new Int32Array(size);
    let top = size;
    let bottom = -1;
    for (let column = 0; column < size; column++) {
      let previous = false;
      for (let row = 0; row < size; row++) {
        const inked = ink[row * size + column] > N.CUT_INK;
        if (inked) {
          counts[column] += 1;
          if (!previous) runs[column] += 1;
          if (tops[column] === size) tops[column] = row;
          bottoms[column] = row;
        }
        previous = inked;
      }
      top = Math.min(top, tops[column]);
      bottom = Math.max(bottom, bottoms[column]);
    }
    if (bottom < 0) return null;
    const tall = N.PART_HEIGHT * (bottom - top + 1);
    const thin = N.THIN_SHARE * (bottom - top + 1);
    // Ink rows from the left edge to each column, and from each column to the right edge.
    const leftHeight = new Float64Array(size);
    const rightHeight = new Float64Array(size);
    for (let column = 0, lo = size, hi = -1; column < size; column++) {
      lo = Math.min(lo, tops[column]);
      hi = Math.max(hi, bottoms[column]);
      leftHeight[column] = hi - lo + 1;
    }
    for (let column = size - 1, lo = size, hi = -1; column >= 0; column--) {
      lo = Math.min(lo, tops[column]);
      hi = Math.max(hi, bottoms[column]);
      rightHeight[column] = hi - lo + 1;
    }
    let best = null;
    let bestCount = Infinity;
    let bestDistance = Infinity;
    for (const column of columns) {
      if (column > size - 2 || runs[column] > 1 || counts[column] > thin) continue;
      if (leftHeight[column] < tall || rightHeight[column + 1] < tall) continue;
      const distance = Math.abs(column + 0.5 - middle);
      if (counts[column] < bestCount || (counts[column] === bestCount && distance < bestDistance)) {
        best = column;
        bestCount = counts[column];
        bestDistance = distance;
      }
    }
    return best;
  }

  /** numbers._cut_strokes: cutColumn for strokes drawn with their digit's brush on the pad,
   * away from the box's ends, never through strokes that cross. */
  function cutStrokes(pieces, box) {
    const [x0, , x1] = box;
    const height = box[3] - box[1];
    const first = Math.max(0, Math.ceil(x0 + N.CUT_MARGIN * height));
    const last = Math.min(N.PAD_SIZE - 1, Math.floor(x1 - N.CUT_MARGIN * height));
    const crossing = crossingGroups(pieces)
      .filter((group) => group.length > 1)
      .map((group) => unionAll(group.map((piece) => strokeBox(piece.points))));
    const columns = [];
    for (let column = first; column <= last; column++) {
      if (!crossing.some((span) => span[0] < column + 0.5 && column + 0.5 < span[2])) columns.push(column);
    }
    if (!columns.length) return null;
    const strokes = pieces.map((piece) => piece.points);
    const ink = rasterizeStrokes(strokes, N.PAD_SIZE, digitBrushRadius(strokes));
    return cutColumn(ink, N.PAD_SIZE, columns, (x0 + x1) / 2);
  }

  /** numbers._split_touching: a piece of ink -> [{pieces, unsure}], left to right. */
  function splitTouching(pieces, depth = 0) {
    const box = unionAll(pieces.map((piece) => strokeBox(piece.points)));
    const width = box[2] - box[0];
    const height = box[3] - box[1];
    if (height < N.MIN_CUT_HEIGHT || width <= N.PARTITION_WIDTH * height) return [{ pieces, unsure: false }];
    const brush = 2 * digitBrushRadius(pieces.map((piece) => piece.points)); // as the ink shows it
    const tooWide = width + brush > N.UNSURE_WIDTH * (height + brush);
    let sides = partition(pieces, height);
    if (sides === null && width + brush > N.CUT_WIDTH * (height + brush) && depth < N.MAX_CUT_DEPTH) {
      const column = cutStrokes(pieces, box);
      if (column !== null) {
        const cut = column + 0.5;
        sides = [true, false].map((left) =>
          pieces.flatMap((piece) => clipStroke(piece.points, cut, left).map((points) => ({ points, index: piece.index })))
        );
        depth += 1;
      }
    }
    if (sides === null) return [{ pieces, unsure: tooWide }];
    return splitTouching(sides[0], depth)
      .concat(splitTouching(sides[1], depth))
      .map((found) => ({ pieces: found.pieces, unsure: true }));
  }

  /**
   * numbers.split_digits: the pad's strokes ([[x, y], ...] in pad units) -> its digits, left
   * to right: [{strokes, box: [x0, y0, x1, y1], strokeIndices, unsure}]. Throws an Error
   * (one line, as the server's) beyond MAX_DIGITS digits or MAX_MARKS separate marks.
   */
  function splitDigits(strokes) {
    const indices = [];
    strokes.forEach((stroke, index) => {
      if (stroke.length && onThePad(stroke)) indices.push(index);
    });
    let marks = piecesOfInk(strokes, indices);
    if (marks.length > N.MAX_MARKS) {
      throw new Error(
        `${marks.length} separate marks is too many for one number; draw at most ${N.MAX_DIGITS} digits`
      );
    }
    marks = leftToRight(mergeSpecks(mergeOverlapping(marks)));
    if (marks.length > N.MAX_DIGITS) throw tooMany(marks.length);
    const parts = [];
    for (const mark of marks) {
      const pieces = mark.members.map((index) => ({ points: strokes[index], index }));
      for (const side of splitTouching(pieces)) {
        const points = side.pieces.map((piece) => piece.points);
        const [x0, y0, x1, y1] = unionAll(points.map(strokeBox));
        const r = N.BRUSH_RADIUS;
        parts.push({
          strokes: points,
          box: [Math.max(0, x0 - r), Math.max(0, y0 - r), Math.min(N.PAD_SIZE, x1 + r), Math.min(N.PAD_SIZE, y1 + r)],
          strokeIndices: Array.from(new Set(side.pieces.map((piece) => piece.index))).sort((a, b) => a - b),
          unsure: side.unsure,
        });
      }
    }
    if (parts.length > N.MAX_DIGITS) throw tooMany(parts.length);
    return parts;
  }

  /** A model's calibration from its web file: {temperature, rejectBelow}. */
  /**
   * numbers.read_strokes in the browser, for a model run here (the MLP, in the frame):
   * strokes -> {text, confidence, digits: [{label, confidence, box, probs, image, unsure}]}.
   * A digit under the model's reject_below is "?"; blank digits are left out.
   */
  function readNumber(model, strokes) {
    const { temperature, rejectBelow } = model.calibration;
    const digits = [];
    for (const part of splitDigits(strokes)) {
      const { image, blank } = partToMnist(part);
      if (blank) continue;
      const logits = Array.from(runModel(model, image), (value) => value / temperature);
      const probs = softmax(logits);
      let best = 0;
      for (let k = 1; k < probs.length; k++) if (probs[k] > probs[best]) best = k;
      const confidence = probs[best];
      const label = confidence >= rejectBelow ? String(best) : "?";
      digits.push({ label, confidence, box: part.box, probs, image, unsure: part.unsure });
    }
    const text = digits.map((digit) => digit.label).join("");
    const confidence = digits.length ? digits.reduce((product, digit) => product * digit.confidence, 1) : 0;
    return { text, confidence, digits };
  }

  root.digitnetPipeline = Object.freeze({
    CONSTANTS,
    drawSegment,
    drawStroke,
    rasterizeStrokes,
    greyFromRGBA,
    loadImagePixels,
    imageToInk,
    canvasToMnist,
    inkToMnist,
    resizeLanczos,
    roundHalfEven,
    parseWebModel,
    runModel,
    softmax,
    calibrationOf,
    loadModel,
    NUMBER_CONSTANTS,
    inkExtent,
    digitBrushRadius,
    strokesToMnist,
    partToMnist,
    strokesTouch,
    splitDigits,
    readNumber,
  });
})(globalThis);
