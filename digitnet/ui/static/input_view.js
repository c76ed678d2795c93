/* The 28x28 the model sees, white ink on black as in MNIST: gr.HTML's js_on_load for
 * digitnet/ui/charts.py's input_view(). Its value is 28 rows of 28 numbers in [0, 1], or null. */
const canvas = element.querySelector("canvas");
const context = canvas.getContext("2d");

function render() {
  const rows = Array.isArray(props.value) ? props.value : null;
  const image = context.createImageData(28, 28);
  for (let i = 0; i < 28 * 28; i++) {
    const level = rows ? Math.round(255 * Math.min(1, Math.max(0, rows[Math.floor(i / 28)][i % 28]))) : 0;
    image.data[4 * i] = level;
    image.data[4 * i + 1] = level;
    image.data[4 * i + 2] = level;
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  element.classList.toggle("view-empty", !rows);
}

watch("value", render);
render();
