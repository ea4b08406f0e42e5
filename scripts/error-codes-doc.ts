/** Writes docs/errors.md from lib/error-codes.ts, the one table every error code is documented in. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorCodesMarkdown } from '../lib/error-codes';

fs.writeFileSync(path.join(__dirname, '..', 'docs', 'errors.md'), errorCodesMarkdown());
