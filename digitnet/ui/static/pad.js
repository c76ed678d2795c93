/* The digit pad: gr.HTML's js_on_load for digitnet/ui/pad.py's digit_pad().
 *
 * In scope (from gr.HTML): element, props, trigger, watch.
 * - Draws with pointer events (mouse, touch, pen) and pointer capture; the page never
 *   scrolls under a finger (touch-action: none in pad.css). Anything that replaces the drawing
 *   mid-stroke (Undo, Clear, an example) lets go of the pen: it draws again once lifted.
 * - Takes at most props.max_strokes strokes and props.max_points points, what the server
 *   accepts (digitnet/strokes.py), and says so when the pad is full.
 * - Keeps every stroke in pad units (props.pad_size square) and rasterises it into ink
 *   exactly as digitnet/strokes.py does.
 * - Every animation frame with new ink, runs the MNIST preprocessing (pipeline.js) and every
 *   model (a dense one right there, a convolutional one in a Web Worker so that it never holds
 *   up a frame), then fires "input"; the app's browser-only listener reads liveOutputs() into
 *   the label, the bars and the 28x28.
 * - A drawing of several digits (pipeline.js's splitDigits, as the server's read endpoint)
 *   is a number: each model answers every digit with the whole drawing, and the answer is the
 *   number, each digit with its top probability; the 28x28 view shows every digit's input with
 *   its two likeliest labels (input_view.js), and says when touching digits make it unsure.
 * - When a stroke ends (debounced), sets props.value to the drawing (small JSON, documented in
 *   the README), which fires "change": the server runs the Python pipeline and checks the
 *   browser's answers.
 * - Anything failing on the way (no pipeline, weights missing, a JS error) turns the browser
 *   path off, silently: the server's answer after each stroke is what shows then.
 */
const PAD = props.pad_size;
const RADIUS = props.brush_radius;
const SEND_AFTER_MS = 150; // a stroke that starts within this is part of the same drawing
const SETTLE_MS = 1000; // the longest the server's copy waits for slow models' answers
const MIN_STEP = 0.75; // pad units between recorded points: finer adds nothing to the ink
// Points off the pad are kept where they are (the rasterisers cut the ink at the pad's edge),
// up to one pad beyond it: further out, a brush of RADIUS draws nothing on the pad either.
const REACH = PAD;
const MAX_STROKES = props.max_strokes;
const MAX_POINTS = props.max_points;
// Pad units of stroke length in all. The server measures the same rounded points; stopping
// a little short keeps any difference in the last digit on the safe side.
const LENGTH_BUDGET = 0.99 * props.max_length;
const pipelineUrl = props.pipeline_url;

const canvas = element.querySelector("canvas");
const context = canvas.getContext("2d");
const clearButton = element.querySelector("[data-action=clear]");
const undoButton = element.querySelector("[data-action=undo]");
const fullHint = element.querySelector(".pad-hint");

const drawing = {
  strokes: [], // [[[x, y], ...], ...] in pad units, rounded to 0.1
  example: null, // {name, grey, alpha, width, height, image} while an example is shown
  ink: new Float32Array(PAD * PAD),
  version: 0, // +1 for every change of the ink
  activePointer: null, // the pointer drawing now, and its stroke (one of drawing.strokes)
  activeStroke: null,
  cleared: null, // {strokes, example}: what the last Clear took, for Undo to bring back
};
const live = {
  enabled: false, // the browser path works: pipeline loaded and the chosen model ready
  choice: props.default_choice,
  models: [], // {name, runner, probs, version, ready}
  input: null, // the latest 28x28 (Float32Array) or null when blank
  parts: [], // a number's digits, left to right: [{box, image, unsure}] (none for one digit)
  inputVersion: -1,
  shownVersion: -1, // the drawing version of the last answer handed out
  // What each answer component was last handed, to skip those that would not change ([]:
  // unknown, repaint all: the server or another model may have shown something else since).
  shownKeys: [],
  frameRequested: false,
  triggerQueued: false,
  inFrame: false, // inside frame(): answers computed here are shown in this frame
};
let sendTimer = null;

/* ------------------------------------------------------------ drawing on screen */

// Read once per stroke, not per pointer event: reading styles or geometry while Gradio has
// just changed the page forces a synchronous restyle and relayout of all of it.
let inkColour = "#111";
let canvasBox = null; // null: read at the next pointer event (the page scrolled)

function readPageGeometry() {
  inkColour = getComputedStyle(element).getPropertyValue("--pad-ink").trim() || "#111";
  canvasBox = canvas.getBoundingClientRect();
}

function resizeCanvas() {
  readPageGeometry();
  const box = canvasBox;
  if (!box.width) return;
  const ratio = window.devicePixelRatio || 1;
  const side = Math.round(box.width * ratio);
  if (canvas.width !== side || canvas.height !== side) {
    canvas.width = side;
    canvas.height = side;
  }
  redraw();
}

/** The theme switched (Gradio toggles body.dark as the system's theme changes): strokes take
 * the new ink colour, or they would vanish into the new background. */
function followTheme() {
  const before = inkColour;
  readPageGeometry();
  if (inkColour !== before) redraw();
}

function redraw() {
  context.setTransform(1, 0, 0, 1, 0, 0);
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (drawing.example) {
    context.imageSmoothingEnabled = true;
    context.drawImage(drawing.example.image, 0, 0, canvas.width, canvas.height);
  }
  for (const stroke of drawing.strokes) paintStroke(stroke, 0);
}

/** Paint the stroke's segments from point `from` on (0: the whole stroke, with its dot). */
function paintStroke(stroke, from) {
  const scale = canvas.width / PAD;
  context.setTransform(scale, 0, 0, scale, 0, 0);
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = 2 * RADIUS;
  context.strokeStyle = inkColour;
  context.fillStyle = context.strokeStyle;
  if (from === 0) {
    context.beginPath();
    context.arc(stroke[0][0], stroke[0][1], RADIUS, 0, 2 * Math.PI);
    context.fill();
  }
  context.beginPath();
  const start = Math.max(0, from - 1);
  context.moveTo(stroke[start][0], stroke[start][1]);
  for (let i = start + 1; i < stroke.length; i++) context.lineTo(stroke[i][0], stroke[i][1]);
  context.stroke();
}

/* ------------------------------------------------------------ the drawing */

function toPad(event) {
  canvasBox ??= canvas.getBoundingClientRect();
  const box = canvasBox;
  const clamp = (value) => Math.min(PAD + REACH, Math.max(-REACH, value));
  // Rounded to 0.1 unit: what is sent to the server is exactly what was rasterised here.
  const x = Math.round(clamp(((event.clientX - box.left) / box.width) * PAD) * 10) / 10;
  const y = Math.round(clamp(((event.clientY - box.top) / box.height) * PAD) * 10) / 10;
  return [x, y];
}

function inkChanged() {
  drawing.version += 1;
  if (!live.frameRequested) {
    live.frameRequested = true;
    requestAnimationFrame(frame);
  }
}

function rebuildInk() {
  drawing.ink = new Float32Array(PAD * PAD);
  const pipeline = globalThis.digitnetPipeline;
  if (pipeline) {
    for (const stroke of drawing.strokes) pipeline.drawStroke(drawing.ink, PAD, stroke, RADIUS);
  }
}

function dropExample() {
  if (!drawing.example) return false;
  drawing.example = null;
  return true;
}

function pointCount() {
  let count = 0;
  for (const stroke of drawing.strokes) count += stroke.length;
  return count;
}

function segment(from, to) {
  return Math.hypot(to[0] - from[0], to[1] - from[1]);
}

function inkLength() {
  let length = 0;
  for (const stroke of drawing.strokes) {
    for (let i = 1; i < stroke.length; i++) length += segment(stroke[i - 1], stroke[i]);
  }
  return length;
}

/** Show or hide "the pad is full" (the server's limits reached); true when full. */
function checkFull(points = pointCount(), length = inkLength()) {
  const full =
    drawing.strokes.length >= MAX_STROKES || points >= MAX_POINTS || length >= LENGTH_BUDGET;
  if (fullHint && fullHint.hidden === full) fullHint.hidden = !full;
  return full;
}

function startStroke(event) {
  if (drawing.activePointer !== null) return; // a second finger does not draw
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  if (checkFull()) return; // the drawing stays as it is; the hint says why
  canvas.setPointerCapture?.(event.pointerId);
  readPageGeometry();
  clearTimeout(sendTimer);
  if (dropExample()) redraw(); // drawing over an example starts a new drawing
  const stroke = [toPad(event)];
  drawing.strokes.push(stroke);
  drawing.activePointer = event.pointerId;
  drawing.activeStroke = stroke;
  globalThis.digitnetPipeline?.drawStroke(drawing.ink, PAD, stroke, RADIUS);
  paintStroke(stroke, 0);
  inkChanged();
  checkFull();
}

function continueStroke(event) {
  if (event.pointerId !== drawing.activePointer) return;
  event.preventDefault();
  // A mouse or pen moving with no button down was let go where the page did not hear it
  // (outside the window, say): the stroke ended there.
  if (event.buttons === 0 && event.pointerType !== "touch") {
    finishStroke();
    return;
  }
  const stroke = drawing.activeStroke;
  const before = stroke.length;
  let room = MAX_POINTS - pointCount();
  let length = inkLength();
  let full = false;
  const events = event.getCoalescedEvents?.() ?? [];
  for (const sample of events.length ? events : [event]) {
    if (room <= 0) break;
    const point = toPad(sample);
    const step = segment(stroke[stroke.length - 1], point);
    if (step < MIN_STEP) continue;
    if (length + step >= LENGTH_BUDGET) {
      full = true;
      break;
    }
    stroke.push(point);
    room -= 1;
    length += step;
  }
  if (room <= 0 || full) checkFull(MAX_POINTS - room, full ? LENGTH_BUDGET : length);
  if (stroke.length === before) return;
  globalThis.digitnetPipeline?.drawStroke(drawing.ink, PAD, stroke, RADIUS, before);
  paintStroke(stroke, before);
  inkChanged();
}

/** Let go of the pen: its later moves draw nothing, until it is put down again. Returns the
 * stroke it was drawing (null when none). */
function releasePen() {
  const pointer = drawing.activePointer;
  const stroke = drawing.activeStroke;
  if (pointer === null) return null;
  drawing.activePointer = null;
  drawing.activeStroke = null;
  try {
    canvas.releasePointerCapture?.(pointer); // its lostpointercapture finds no active pointer
  } catch (error) {
    // The pointer is gone already: nothing to release.
  }
  return stroke;
}

/** The stroke is done (the pen lifted, or its release was missed): send the drawing soon. */
function finishStroke() {
  if (releasePen()) scheduleSend(SEND_AFTER_MS);
}

function endStroke(event) {
  if (event.pointerId === drawing.activePointer) finishStroke();
}

/** The drawing changed (ink, strokes or example): paint it, answer it, send it. */
function drawingReplaced() {
  rebuildInk();
  redraw();
  inkChanged();
  checkFull();
  scheduleSend(0);
}

/** Undo the stroke being drawn, else the last stroke, else the example, else the last Clear. */
function undo() {
  const active = releasePen();
  if (active) {
    drawing.strokes = drawing.strokes.filter((stroke) => stroke !== active);
  } else if (drawing.strokes.length) {
    drawing.strokes.pop();
  } else if (dropExample()) {
    // back to a blank pad
  } else if (drawing.cleared) {
    drawing.strokes = drawing.cleared.strokes;
    drawing.example = drawing.cleared.example;
    drawing.cleared = null;
  } else {
    return;
  }
  drawingReplaced();
}

/** Clear everything, the stroke being drawn too; Undo right after brings it all back. */
function clear() {
  releasePen();
  if (drawing.strokes.length || drawing.example) {
    drawing.cleared = { strokes: drawing.strokes, example: drawing.example };
  }
  drawing.strokes = [];
  dropExample();
  drawingReplaced();
}

/* ------------------------------------------------------------ examples (set by the server) */

function showExample(name) {
  const url = props.examples?.[name];
  if (!url) return;
  const show = (example) => {
    releasePen(); // a stroke begun while the example loaded goes with the drawing
    drawing.strokes = [];
    drawing.example = example;
    rebuildInk();
    redraw();
    inkChanged();
    checkFull();
  };
  const pipeline = globalThis.digitnetPipeline;
  if (!pipeline) {
    // No browser path: show the picture; the server's answer comes with it.
    const image = new Image();
    image.onload = () => show({ name, image, grey: null });
    image.src = url;
    return;
  }
  pipeline.loadImagePixels(url).then(
    ({ rgba, width, height, image }) => {
      const { grey, alpha } = pipeline.greyFromRGBA(rgba, width, height);
      show({ name, image, grey, alpha, width, height });
    },
    (error) => console.warn(`digitnet: could not show the example ${name}:`, error),
  );
}

/** A value set from Python (an example picked, a drawing to show) replaces the drawing, the
 * stroke being drawn included: the server answers that value, nothing here needs sending. */
watch("value", () => {
  const value = props.value;
  if (!value || typeof value !== "object") return;
  if (!value.example && !Array.isArray(value.strokes)) return;
  releasePen();
  clearTimeout(sendTimer);
  drawing.cleared = null;
  if (value.example) {
    showExample(value.example);
  } else {
    drawing.strokes = structuredClone(value.strokes);
    dropExample();
    rebuildInk();
    redraw();
    inkChanged();
    checkFull();
  }
});

/* ------------------------------------------------------------ the browser path */

// A model in a worker rests as long as its last answer took (at most this long) before the
// next, so it takes at most about half a core from the page. Measured on 2 busy cores, where
// the CNN's forward pass takes ~27 ms: back to back, it slowed the MLP's per-frame answer
// (p90 58 -> 70 ms); a fixed 100 ms rest kept the CNN's answer ~170-190 ms behind the pen
// (this: ~120-165 ms). Where its pass takes a few ms, the CNN answers every frame or two.
const MAX_WORKER_REST_MS = 100;

/** Runs a model on this thread if it is light (a dense network: ~1 ms), else in a Web Worker
 * (pipeline.js answers there) so the CNN's ~30 ms never delays a frame. */
async function makeRunner(spec, onResult, onError) {
  const pipeline = globalThis.digitnetPipeline;
  const url = new URL(spec.url, document.baseURI).href;
  const response = await fetch(url, { cache: "force-cache" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const buffer = await response.arrayBuffer();
  const model = pipeline.parseWebModel(buffer);
  const inThisThread = (parsed) => ({
    inWorker: false,
    calibration: model.calibration,
    run(version, input, parts) {
      const partLogits = parts.map((part) => pipeline.runModel(parsed, part));
      onResult(version, pipeline.runModel(parsed, input), partLogits);
    },
  });
  if (!model.ops.some((op) => op.op === "conv2d")) return inThisThread(model);
  let worker;
  try {
    worker = new Worker(pipelineUrl);
  } catch (error) {
    return inThisThread(model);
  }
  let loaded = false;
  const started = new Promise((resolve, reject) => {
    worker.onmessage = (message) => {
      const data = message.data;
      if (data.type === "loaded") {
        loaded = true;
        resolve();
      } else if (data.type === "result") {
        onResult(data.version, data.logits, data.partLogits ?? []);
      } else if (data.type === "error") {
        if (loaded) onError(new Error(data.message));
        else reject(new Error(data.message));
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      if (loaded) onError(new Error(event.message || "the model's worker failed"));
      else reject(new Error(event.message || "the model's worker did not start"));
    };
  });
  worker.postMessage({ type: "model", buffer: buffer.slice(0) });
  try {
    await started;
  } catch (error) {
    // A worker that cannot start (a strict content policy, say): this thread runs it.
    worker.terminate();
    return inThisThread(model);
  }
  return {
    inWorker: true,
    calibration: model.calibration,
    run(version, input, parts) {
      worker.postMessage({ type: "run", version, input, parts });
    },
  };
}

function addModel(spec) {
  const model = {
    name: spec.name,
    probs: null, // calibrated: softmax(logits / temperature)
    digits: [], // a number's digits' calibrated probabilities, left to right (none: one digit)
    rejectBelow: 0, // a lower top probability is "not a digit"
    version: -1,
    ready: false,
    busy: false,
    pending: null, // [version, input, parts]: the newest drawing, waiting for the model
    startedAt: 0, // when the model was last given an input
    restUntil: 0,
    timer: null,
    runner: null,
  };
  const onResult = (version, logits, partLogits) => {
    model.busy = false;
    model.version = version;
    const { temperature, rejectBelow } = model.runner.calibration;
    const softmax = globalThis.digitnetPipeline.softmax;
    model.probs = softmax(logits, temperature);
    model.digits = partLogits.map((part) => softmax(part, temperature));
    model.rejectBelow = rejectBelow;
    if (model.runner.inWorker) {
      const now = performance.now();
      model.restUntil = now + Math.min(now - model.startedAt, MAX_WORKER_REST_MS);
    }
    queueTrigger();
    pump(model);
  };
  live.models.push(model);
  makeRunner(spec, onResult, fail).then(
    (runner) => {
      model.runner = runner;
      model.ready = true;
      updateEnabled();
      if (live.enabled) inkChanged(); // answer what is already drawn
    },
    (error) => console.warn(`digitnet: ${spec.name} stays on the server:`, error),
  );
}

function submit(model, version, input, parts) {
  model.pending = [version, input, parts]; // only the newest drawing is worth answering
  pump(model);
}

/** Give the model its pending input when it is free (and, in a worker, rested). */
function pump(model) {
  if (model.busy || !model.pending || model.timer !== null) return;
  const wait = model.restUntil - performance.now();
  if (wait > 0) {
    model.timer = setTimeout(() => {
      model.timer = null;
      pump(model);
    }, wait);
    return;
  }
  const [version, input, parts] = model.pending;
  model.pending = null;
  model.busy = true;
  model.startedAt = performance.now();
  try {
    model.runner.run(version, input, parts);
  } catch (error) {
    fail(error);
  }
}

function chosenModel() {
  return live.models.find((model) => model.name === live.choice && model.ready) ?? null;
}

function updateEnabled() {
  live.enabled = Boolean(globalThis.digitnetPipeline) && chosenModel() !== null;
  live.shownKeys = []; // while another model was chosen, the server painted its answers
  element.classList.toggle("pad-live", live.enabled);
}

function fail(error) {
  console.warn("digitnet: the browser path is off; answers come from the server:", error);
  live.enabled = false;
  live.models = [];
  live.shownKeys = [];
  element.classList.remove("pad-live");
}

/** Once per animation frame with new ink: preprocess, then ask every model. */
function frame() {
  live.frameRequested = false;
  if (!live.enabled || live.inputVersion === drawing.version) return;
  live.inFrame = true;
  try {
    const pipeline = globalThis.digitnetPipeline;
    const version = drawing.version;
    const example = drawing.example;
    const result = example
      ? pipeline.canvasToMnist(example.grey, example.alpha, example.width, example.height)
      : pipeline.strokesToMnist(drawing.strokes); // a brush scaled to the digit, as the server
    live.inputVersion = version;
    live.input = result.blank ? null : result.image;
    readParts(example ? [] : drawing.strokes);
    const parts = live.parts.map((part) => part.image);
    for (const model of live.models) {
      if (!model.ready) continue;
      if (result.blank) {
        model.pending = null;
        model.version = version;
        model.probs = null;
        model.digits = [];
      } else {
        submit(model, version, result.image, parts);
      }
    }
    if (result.blank) queueTrigger();
  } catch (error) {
    fail(error);
  } finally {
    live.inFrame = false;
  }
}

/** The drawing's digits into live.parts when it is a number (two digits or more, as the
 * server's read finds them); otherwise none, and the drawing is answered as one. */
function readParts(strokes) {
  const pipeline = globalThis.digitnetPipeline;
  live.parts = [];
  if (strokes.length === 0) return;
  let split;
  try {
    split = pipeline.splitDigits(strokes);
  } catch (error) {
    // More marks than a number has (a 7 tapped out in dots, a scribble): the pad answers the
    // whole drawing as one, as the server's check does; the read API gives this line.
    return;
  }
  if (split.length < 2) return; // one digit: the whole drawing, exactly as before
  const parts = [];
  for (const part of split) {
    const { image, blank } = pipeline.partToMnist(part);
    if (!blank) parts.push({ box: part.box, image, unsure: part.unsure });
  }
  if (parts.length >= 2) live.parts = parts;
}

/** Fire "input" once for the answers at hand: right after a frame's own answers (they are
 * painted in that frame), else at the next animation frame, so that however many answers
 * arrive, Gradio (the costly part) updates the outputs at most once a frame. */
function queueTrigger() {
  if (live.triggerQueued || !live.enabled) return;
  live.triggerQueued = true;
  const fire = () => {
    live.triggerQueued = false;
    trigger("input");
  };
  if (live.inFrame) queueMicrotask(fire);
  else requestAnimationFrame(fire);
}

function percent(p, digits) {
  return `${(100 * p).toFixed(digits)}%`;
}

const SKIP = Object.freeze({ __type__: "update" }); // Gradio leaves such an output as it is

/** What the answer components show: [answer text, label, bars, 28x28]; see draw_tab.py.
 * An output whose display would not change is skipped: Gradio's update is the costly part. */
function liveOutputs(choice) {
  if (choice && choice !== live.choice) {
    live.choice = choice;
    live.shownKeys = []; // what shows is another model's answer
  }
  const chosen = chosenModel();
  live.shownVersion = chosen ? chosen.version : live.inputVersion;
  const outputs = computeOutputs(chosen);
  const keys = [
    outputs[0],
    JSON.stringify(outputs[1]?.confidences?.map((c) => [c.label, Math.round(100 * c.confidence)]) ?? null),
    JSON.stringify(outputs[2] && Object.values(outputs[2]).map((p) => p.map((v) => Math.round(v * 500)))),
    JSON.stringify(outputs[3]),
  ];
  const result = outputs.map((output, i) => (keys[i] === live.shownKeys[i] ? SKIP : output));
  live.shownKeys = keys;
  return result;
}

function computeOutputs(chosen) {
  if (!chosen || !chosen.probs || !live.input) {
    return [props.prompt, {}, null, null]; // {}: gr.Label's empty value
  }
  if (chosen.digits.length >= 2 && chosen.digits.length === live.parts.length && readsAsNumber(chosen)) {
    return numberOutputs(chosen);
  }
  const probs = chosen.probs;
  const order = probs.map((p, digit) => [p, digit]).sort((a, b) => b[0] - a[0]);
  const [best, second] = order;
  let answer;
  if (best[0] < chosen.rejectBelow) {
    answer = props.not_a_digit.replace("{digit}", best[1]).replace("{percent}", percent(best[0], 0));
  } else if (best[0] < props.unsure_below) {
    answer = `Not sure: maybe **${best[1]}** (${percent(best[0], 0)}) or **${second[1]}** (${percent(second[0], 0)})`;
  } else {
    // Never "100.0% sure" (as predict.answer_sentence): the surest are right ~99.9% of the time.
    answer = `It's ${best[1] === 8 ? "an" : "a"} **${best[1]}** (${percent(Math.min(best[0], 0.999), 1)} sure)`;
  }
  const label = {
    label: String(best[1]),
    confidences: order.map(([p, digit]) => ({ label: String(digit), confidence: p })),
  };
  const bars = {};
  for (const model of live.models) if (model.probs) bars[model.name] = model.probs;
  return [answer, label, bars, rowsOf(live.input)];
}

/** A 28x28 input as input_view's value: 28 rows of 28 numbers. */
function rowsOf(image) {
  const rows = [];
  for (let row = 0; row < 28; row++) {
    rows.push(Array.from(image.subarray(row * 28, row * 28 + 28), (v) => Math.round(v * 1000) / 1000));
  }
  return rows;
}

/** Whether the model takes two of the drawing's parts or more, and most of them, for digits
 * (number_answer.reads_as_number): a tangle whose pieces it mostly refuses ("?1??2", "?0") is one
 * drawing that is not a digit, not a number. */
function readsAsNumber(chosen) {
  const refused = chosen.digits.filter((probs) => Math.max(...probs) < chosen.rejectBelow).length;
  return chosen.digits.length - refused >= 2 && refused * 2 <= chosen.digits.length;
}

const TOP_LABELS = 2; // each digit of a number shows its two likeliest labels (charts.TOP_LABELS)

/** A number's answer, as the server's (number_answer.number_sentence, charts.number_view_value): a
 * digit under rejectBelow is "?", the confidence the product of the digits'; the number, then
 * each digit with its top probability; "It's **49**? (unsure: …)" when digits touched. The
 * 28x28 view shows every digit with its two likeliest labels. */
function numberOutputs(chosen) {
  const digits = chosen.digits.map((probs, k) => {
    const order = probs.map((p, digit) => [p, digit]).sort((a, b) => b[0] - a[0]);
    const [p, best] = order[0];
    return {
      label: p >= chosen.rejectBelow ? String(best) : "?",
      p,
      top: order.slice(0, TOP_LABELS).map(([q, digit]) => [String(digit), Math.round(q * 1e4) / 1e4]),
      unsure: Boolean(live.parts[k].unsure),
      image: rowsOf(live.parts[k].image),
    };
  });
  const text = digits.map((digit) => digit.label).join("");
  const confidence = digits.reduce((product, digit) => product * digit.p, 1);
  const each = digits.map((digit) => `${digit.label} (${percent(digit.p, 0)})`).join(" · ");
  const lead = confidence < props.unsure_below ? "Not sure: maybe" : "It's";
  const head = digits.some((digit) => digit.unsure)
    ? `${lead} **${text}**? (unsure: two digits may touch)`
    : `${lead} **${text}** (${percent(Math.min(confidence, 0.999), 1)} sure)`;
  const label = {
    label: text,
    confidences: digits.map((digit, k) => ({ label: `digit ${k + 1}: ${digit.label}`, confidence: digit.p })),
  };
  const view = { digits: digits.map(({ label, top, unsure, image }) => ({ label, top, unsure, image })) };
  return [`${head}  \n${each}`, label, null, view];
}

/* ------------------------------------------------------------ the server's copy */

function padValue() {
  const value = { strokes: drawing.strokes };
  if (drawing.example) value.example = drawing.example.name;
  if (live.enabled && live.inputVersion === drawing.version) {
    const answers = {};
    for (const model of live.models) {
      if (model.ready && model.version === drawing.version) {
        answers[model.name] = model.probs ? model.probs.map((p) => Math.round(p * 1e4) / 1e4) : null;
      }
    }
    value.browser = { answers };
  }
  return value;
}

function settled() {
  if (!live.enabled) return true;
  return live.inputVersion === drawing.version && live.models.every((m) => !m.ready || m.version === drawing.version);
}

function scheduleSend(delay) {
  clearTimeout(sendTimer);
  const started = performance.now();
  const attempt = () => {
    if (drawing.activePointer !== null) return; // a new stroke began: its end sends
    if (!settled() && performance.now() - started < SETTLE_MS) {
      sendTimer = setTimeout(attempt, 16);
      return;
    }
    props.value = structuredClone(padValue()); // fires "change": the server's check
  };
  sendTimer = setTimeout(attempt, delay);
}

/* ------------------------------------------------------------ wiring */

canvas.addEventListener("pointerdown", startStroke);
canvas.addEventListener("pointermove", continueStroke);
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
canvas.addEventListener("lostpointercapture", endStroke);
// A release the page never hears (the window or the tab left mid-stroke) must not leave the
// pen down: the stroke ends there.
window.addEventListener("blur", finishStroke);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") finishStroke();
});
// A scroll moves the pad under the pointer: its box is read again at the next pointer event.
// Captured: a scrolling column inside the page scrolls too, and its scroll event does not bubble.
window.addEventListener(
  "scroll",
  () => {
    canvasBox = null;
  },
  { capture: true, passive: true },
);
new MutationObserver(followTheme).observe(document.body, { attributes: true, attributeFilter: ["class"] });
window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", () => requestAnimationFrame(followTheme));
canvas.addEventListener("contextmenu", (event) => event.preventDefault());
clearButton.addEventListener("click", clear);
undoButton.addEventListener("click", undo);

function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

document.addEventListener("keydown", (event) => {
  if (!element.isConnected || element.offsetParent === null || isTyping(event.target)) return;
  // Z by its letter, or by its place on the keyboard where the layout has no Latin letters
  // (Russian: "я"), as other programs' Ctrl+Z does.
  const isZ = event.key.toLowerCase() === "z" || (event.code === "KeyZ" && /[^\x00-\x7f]/.test(event.key));
  if (event.key === "Escape") {
    event.preventDefault();
    clear();
  } else if ((event.ctrlKey || event.metaKey) && !event.shiftKey && isZ) {
    event.preventDefault();
    undo();
  }
});

new ResizeObserver(resizeCanvas).observe(canvas);
resizeCanvas();

const api = {
  liveOutputs,
  setChoice(choice) {
    live.choice = choice;
    updateEnabled();
    queueTrigger(); // every model has answered already: show the chosen one's answer
  },
  get version() {
    return drawing.version;
  },
  get live() {
    return live.enabled;
  },
  get shownVersion() {
    return live.shownVersion;
  },
  value: padValue,
  clear,
  undo,
};
globalThis.digitnetPads = globalThis.digitnetPads || {};
globalThis.digitnetPads[props.pad_id] = api;

function loadPipeline() {
  if (globalThis.digitnetPipeline) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = pipelineUrl;
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`could not load ${pipelineUrl}`));
    document.head.appendChild(script);
  });
}

function addNewModels() {
  for (const spec of props.models || []) {
    if (!live.models.some((model) => model.name === spec.name)) addModel(spec);
  }
}

loadPipeline().then(() => {
  rebuildInk(); // strokes drawn before the pipeline arrived
  addNewModels();
  // A model added from Python (gr.update(models=[...])) answers in the browser too.
  watch("models", addNewModels);
}, fail);
