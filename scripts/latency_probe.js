/* Injected by scripts/latency_benchmark.py (and the browser tests) into the app's page:
 * records when each pen movement reached the pad and when an answer that includes it was on
 * screen, so "stroke -> answer" is measured in the page, on the page's own clock.
 *
 *   inputs: {t, version}     every pointerdown/pointermove on the pad (event.timeStamp) and
 *                            the drawing version it produced
 *   shown:  {t, version}     when #label first displayed the answer for that drawing version
 *   serverChecks: {t}        when the server's check (#comparison) changed
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
  pad.liveOutputs = (choice) => {
    const outputs = original(choice);
    const version = pad.shownVersion;
    const label = outputs[1];
    const expected =
      label && label.label !== undefined
        ? `${label.label} ${Math.round(100 * label.confidences[0].confidence)}%`
        : "";
    // Gradio applies the outputs after this returns; poll each frame until #label shows them.
    const started = performance.now();
    const check = () => {
      if (labelText() === expected) {
        probe.shown.push({ t: performance.now(), version, label: expected });
      } else if (performance.now() - started < 5000) {
        requestAnimationFrame(check);
      }
    };
    requestAnimationFrame(check);
    return outputs;
  };

  const comparison = document.querySelector("#comparison");
  new MutationObserver(() => probe.serverChecks.push({ t: performance.now() })).observe(comparison, {
    childList: true,
    subtree: true,
    characterData: true,
  });
})();
