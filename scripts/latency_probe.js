/* Injected by scripts/latency_benchmark.py (and the browser tests) into the app's page:
 * records when each pen movement reached the pad and when an answer that includes it was on
 * screen, so "stroke -> answer" is measured in the page, on the page's own clock.
 *
 *   inputs: {t, version}         every pointerdown/pointermove on the pad (event.timeStamp)
 *                                and the drawing version it produced
 *   shown:  {t, painted, version} when #label first held the answer for that drawing version
 *                                (t), and when the frame showing it had been painted
 *   serverChecks: {t, text}      when the server's check (#comparison) changed, and to what
 */
(() => {
  const pad = globalThis.digitnetPads.pad;
  const canvas = document.querySelector("#pad canvas");
  const probe = { inputs: [], shown: [], serverChecks: [], ups: [] };
  globalThis.digitnetProbe = probe;

  const record = (event) => probe.inputs.push({ t: event.timeStamp, version: pad.version });
  // Added after the pad's own listeners, so pad.version already counts this event.
  canvas.addEventListener("pointerdown", record);
  canvas.addEventListener("pointermove", record);
  canvas.addEventListener("pointerup", (event) => probe.ups.push({ t: event.timeStamp }));

  // What #label shows: its headline and the top row's percentage ("7 89%"), or "".
  const labelText = () => {
    const headline = document.querySelector("#label h2")?.textContent?.trim() ?? "";
    const top = document.querySelector("#label .confidence-set dd")?.textContent?.trim() ?? "";
    return headline ? `${headline} ${top}` : "";
  };
  const original = pad.liveOutputs;
  let expected = "";
  pad.liveOutputs = (choice) => {
    const outputs = original(choice);
    const version = pad.shownVersion;
    const label = outputs[1];
    if (label && label.__type__ !== "update") {
      // A skipped label ({__type__: "update"}) stays as it is: what it shows is still right.
      expected =
        label.label !== undefined
          ? `${label.label} ${Math.round(100 * label.confidences[0].confidence)}%`
          : "";
    }
    // Gradio applies the outputs after this returns: watch #label until it shows them.
    const wanted = expected;
    const shown = () => {
      const entry = { t: performance.now(), painted: null, version, label: wanted };
      probe.shown.push(entry);
      // The next frame paints it: a task queued from its animation frame runs after the paint.
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => {
          entry.painted = performance.now();
        };
        channel.port2.postMessage(null);
      });
    };
    if (labelText() === wanted) {
      queueMicrotask(shown); // nothing to change on screen (after the outputs are handed over)
    } else {
      const observer = new MutationObserver(() => {
        if (labelText() === wanted) {
          observer.disconnect();
          shown();
        }
      });
      observer.observe(document.querySelector("#label"), { childList: true, subtree: true, characterData: true });
      setTimeout(() => observer.disconnect(), 5000);
    }
    return outputs;
  };

  const comparison = document.querySelector("#comparison");
  new MutationObserver(() =>
    probe.serverChecks.push({ t: performance.now(), text: comparison.textContent }),
  ).observe(comparison, {
    childList: true,
    subtree: true,
    characterData: true,
  });
})();
