"""What task plugins build on: answer kinds (text, boxes, image codes), boxes, labels, frames, metrics, drawing."""
