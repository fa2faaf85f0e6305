//! An in-memory series and alarm book, run through the same functions as the store.

use std::collections::BTreeMap;
use std::convert::Infallible;

use super::*;
use crate::domain::detect::{AlarmSpan, Reconciled, reconcile};

#[derive(Default)]
pub struct MemSeries {
    pub windows: BTreeMap<i64, (WindowRecord, Vec<u8>)>,
    pub parts: BTreeMap<(i64, u32), Vec<u8>>,
}

impl SeriesAccess for MemSeries {
    type Error = Infallible;
    fn window(&mut self, start: i64) -> Result<Option<(WindowRecord, Vec<u8>)>, Infallible> {
        Ok(self.windows.get(&start).cloned())
    }
    fn window_before(&mut self, start: i64) -> Result<Option<(i64, WindowRecord)>, Infallible> {
        Ok(self
            .windows
            .range(..start)
            .next_back()
            .map(|(k, (v, _))| (*k, v.clone())))
    }
    fn window_after(&mut self, start: i64) -> Result<Option<i64>, Infallible> {
        Ok(self.windows.range(start + 1..).next().map(|(k, _)| *k))
    }
    fn part(&mut self, window: i64, index: u32) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.parts.get(&(window, index)).cloned())
    }
    fn put_part(&mut self, window: i64, index: u32, bytes: Vec<u8>) -> Result<(), Infallible> {
        self.parts.insert((window, index), bytes);
        Ok(())
    }
    fn delete_part(&mut self, window: i64, index: u32) -> Result<(), Infallible> {
        self.parts.remove(&(window, index));
        Ok(())
    }
    fn put_window(
        &mut self,
        start: i64,
        record: &WindowRecord,
        open: &[u8],
    ) -> Result<(), Infallible> {
        self.windows.insert(start, (record.clone(), open.to_vec()));
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAlarm {
    pub id: usize,
    pub excursion: Excursion,
    pub retracted: bool,
}

pub struct Sim {
    pub series: MemSeries,
    pub state: SeriesState,
    pub alarms: Vec<SimAlarm>,
    pub limits: Limits,
    pub accepted: u64,
    pub duplicates: u64,
}

impl Sim {
    pub fn new(limits: Limits) -> Self {
        Self {
            series: MemSeries::default(),
            state: SeriesState::default(),
            alarms: Vec::new(),
            limits,
            accepted: 0,
            duplicates: 0,
        }
    }

    /// One batch, as the store handles it: sort, drop in-batch repeats, merge,
    /// reconcile.
    pub fn ingest(&mut self, batch: &[Sample]) {
        let mut sorted = batch.to_vec();
        sorted.sort_by_key(|s| s.ts);
        let before = sorted.len();
        sorted.dedup_by_key(|s| s.ts);
        self.duplicates += (before - sorted.len()) as u64;
        let Ok(outcome) = ingest(&mut self.series, &self.limits, &self.state, &sorted);
        self.accepted += outcome.accepted;
        self.duplicates += outcome.duplicates;
        self.state = outcome.state.clone();
        let to = outcome.covered_to.unwrap_or(i64::MAX);
        let mut affected: Vec<AlarmSpan> = self
            .alarms
            .iter()
            .filter(|a| {
                !a.retracted
                    && a.excursion.started_at >= outcome.covered_from
                    && a.excursion.started_at < to
            })
            .map(|a| AlarmSpan {
                alarm_id: a.id.to_string(),
                kind: a.excursion.kind,
                started_at: a.excursion.started_at,
                end: a.excursion.end(),
            })
            .collect();
        affected.sort_by_key(|a| a.started_at);
        for action in reconcile(&affected, &outcome.excursions) {
            match action {
                Reconciled::Update {
                    alarm_id,
                    excursion,
                } => {
                    let id: usize = alarm_id.parse().unwrap();
                    self.alarms[id].excursion = excursion;
                }
                Reconciled::Raise(excursion) => {
                    let id = self.alarms.len();
                    self.alarms.push(SimAlarm {
                        id,
                        excursion,
                        retracted: false,
                    });
                }
                Reconciled::Retract { alarm_id } => {
                    let id: usize = alarm_id.parse().unwrap();
                    self.alarms[id].retracted = true;
                }
            }
        }
    }

    /// The alarms the readings show, without ids, in time order.
    pub fn live(&self) -> Vec<Excursion> {
        let mut live: Vec<Excursion> = self
            .alarms
            .iter()
            .filter(|a| !a.retracted)
            .map(|a| a.excursion.clone())
            .collect();
        live.sort_by_key(|e| e.started_at);
        live
    }

    pub fn all_readings(&mut self) -> Vec<Sample> {
        let windows: Vec<(i64, (WindowRecord, Vec<u8>))> = self
            .series
            .windows
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let mut out = Vec::new();
        for (window, (record, open)) in windows {
            let Ok((samples, failed, _)) =
                read_window(|index| self.series.part(window, index), &record, &open);
            assert_eq!(failed, 0);
            assert_eq!(samples.len() as u32, record.count);
            out.extend(samples);
        }
        out
    }
}
