import { seedBatch } from './seed-batch.js';

seedBatch(1, 200);
