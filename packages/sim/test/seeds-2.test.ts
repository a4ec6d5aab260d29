import { seedBatch } from './seed-batch.js';

seedBatch(201, 200);
